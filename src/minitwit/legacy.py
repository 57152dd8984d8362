"""``minitwit import-legacy PATH.db``: users, messages and follows of the original MiniTwit.

The original kept everything in SQLite: user(user_id, username, email, pw_hash), message(
message_id, author_id, text, pub_date unix seconds, flagged) and follower(who_id, whom_id), with
werkzeug password hashes (minitwit.legacy_passwords verifies them; the first sign-in upgrades
them to Argon2id). The import runs in one transaction and is idempotent: accounts are keyed by
username and remember their legacy id, messages by their legacy id, and a follow is imported only
while one of its two accounts is new, so running it again changes nothing, even after users
have since unfollowed. Rows that cannot be imported (orphans, invalid names, texts the
schema refuses) are skipped and reported; nothing is silently changed.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from minitwit import legacy_passwords, migrations, usernames
from minitwit.accounts import RESERVED_USERNAMES
from minitwit.db import Database, Session
from minitwit.paths import SQL_DIR
from minitwit.queries import load_queries
from minitwit.runtime import database_url
from minitwit.settings import Settings
from minitwit.validation import validate_email, validate_message, validate_username

BATCH_SIZE = 5000
MAX_UNIX_TIME = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second PostgreSQL prints plainly
PROBLEMS_SHOWN = 50


class LegacyError(RuntimeError):
    """The file is not a readable database of the original MiniTwit."""


@dataclass
class Tally:
    new: int = 0
    present: int = 0  # imported by an earlier run
    skipped: int = 0


@dataclass
class ImportReport:
    users: Tally = field(default_factory=Tally)
    messages: Tally = field(default_factory=Tally)
    follows: Tally = field(default_factory=Tally)
    orphans: int = 0  # rows naming a user that the legacy user table does not have
    duplicate_follows: int = 0  # follower rows folded into one follow
    unknown_hashes: int = 0  # accounts whose password hash no verifier recognises
    problems: list[str] = field(default_factory=list)
    # Names kept although they read like another account's (usernames.fill_missing_keys).
    look_alikes: list[str] = field(default_factory=list)

    def skip(self, tally: Tally, problem: str, *, orphan: bool = False) -> None:
        tally.skipped += 1
        self.orphans += orphan
        self.problems.append(problem)

    def render(self) -> str:
        lines = [
            f"users:    {self.users.new} imported, {self.users.present} already present, {self.users.skipped} skipped",
            (f"messages: {self.messages.new} imported, {self.messages.present} already present, "
             f"{self.messages.skipped} skipped"),
            (f"follows:  {self.follows.new} imported, {self.follows.present} already present, "
             f"{self.follows.skipped} skipped, {self.duplicate_follows} duplicate rows folded"),
            f"orphan rows (naming a user the legacy database does not have): {self.orphans}",
        ]
        if self.unknown_hashes:
            lines.append(f"accounts whose password hash format is unknown (they cannot sign in): "
                         f"{self.unknown_hashes}")
        if self.look_alikes:
            lines.append(f"usernames kept although they read like another account's: {len(self.look_alikes)}")
            lines += [f"  {name!r}" for name in self.look_alikes[:PROBLEMS_SHOWN]]
            if len(self.look_alikes) > PROBLEMS_SHOWN:
                lines.append(f"  ... and {len(self.look_alikes) - PROBLEMS_SHOWN} more")
        if self.problems:
            lines.append("skipped rows:")
            lines += [f"  {problem}" for problem in self.problems[:PROBLEMS_SHOWN]]
            if len(self.problems) > PROBLEMS_SHOWN:
                lines.append(f"  ... and {len(self.problems) - PROBLEMS_SHOWN} more")
        return "\n".join(lines)


class LegacyDatabase:
    """The original MiniTwit's SQLite file, opened read-only."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise LegacyError(f"{path}: no such file")
        self.path = path
        self.queries = load_queries(SQL_DIR / "sqlite")
        self._connection = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)

    def rows(self, name: str) -> Iterator[tuple]:
        try:
            cursor = self._connection.execute(self.queries[name].sql)
            while batch := cursor.fetchmany(BATCH_SIZE):
                yield from batch
        except sqlite3.DatabaseError as error:
            raise LegacyError(f"{self.path} is not a database of the original MiniTwit: {error}") from None

    def close(self) -> None:
        self._connection.close()


def as_text(value: object) -> object:
    """The original schema declares text columns as ``string``, which SQLite stores with numeric
    affinity: a message "42" comes back as the integer 42. Such numbers are read back as text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return value
    return value


def user_problem(username: str, email: str, pw_hash: str) -> str | None:
    if username.lower() in RESERVED_USERNAMES:
        return "the username is the name of a page of the site"
    problem = validate_username(username) or validate_email(email)
    if problem:
        return problem
    return None if pw_hash else "no password hash"


def message_problem(text: str, pub_date: object) -> str | None:
    if not isinstance(pub_date, int) or not 0 <= pub_date <= MAX_UNIX_TIME:
        return f"pub_date {pub_date!r} is not a unix time"
    return validate_message(text)


async def import_users(db: Session, legacy: LegacyDatabase, report: ImportReport) -> tuple[dict, set, set]:
    """Imports the valid accounts; returns (legacy id -> new id, legacy ids created now, all legacy ids)."""
    accepted: list[tuple[int, str, str, str]] = []
    all_ids: set[int] = set()
    names: set[str] = set()
    for user_id, *fields in legacy.rows("legacy_users"):
        username, email, pw_hash = (as_text(value) for value in fields)
        all_ids.add(user_id)
        if not (isinstance(username, str) and isinstance(email, str) and isinstance(pw_hash, str)):
            report.skip(report.users, f"user {user_id}: a field is not text")
            continue
        problem = user_problem(username, email, pw_hash)
        if problem is None and username in names:
            problem = "an earlier legacy user has the same username"
        if problem:
            report.skip(report.users, f"user {user_id} {username!r}: {problem}")
            continue
        names.add(username)
        report.unknown_hashes += not (legacy_passwords.is_legacy_hash(pw_hash) or pw_hash.startswith("$argon2"))
        accepted.append((user_id, username, email, pw_hash))
    created_rows = await db.fetch_all(
        "import_legacy_users",
        usernames=[row[1] for row in accepted], emails=[row[2] for row in accepted],
        pw_hashes=[row[3] for row in accepted], legacy_user_ids=[row[0] for row in accepted],
    )
    created = {row["legacy_user_id"] for row in created_rows}
    imported = {row["legacy_user_id"]: row["user_id"] for row in await db.fetch_all("imported_legacy_users")}
    ids = {}
    for user_id, username, _, _ in accepted:
        if user_id in imported:
            ids[user_id] = imported[user_id]
            if user_id in created:
                report.users.new += 1
            else:
                report.users.present += 1
        else:
            report.skip(report.users, f"user {user_id} {username!r}: the username belongs to an account of this site")
    return ids, created, all_ids


async def import_messages(db: Session, legacy: LegacyDatabase, report: ImportReport,
                          ids: dict[int, int], all_ids: set[int]) -> None:
    batch: list[tuple[int, str, int, bool, int]] = []

    async def flush() -> None:
        if not batch:
            return
        status = await db.execute(
            "import_legacy_messages",
            author_ids=[row[0] for row in batch], texts=[row[1] for row in batch],
            pub_dates=[row[2] for row in batch], flagged=[row[3] for row in batch],
            legacy_message_ids=[row[4] for row in batch],
        )
        created = int(status.split()[-1])
        report.messages.new += created
        report.messages.present += len(batch) - created
        batch.clear()

    for message_id, author_id, raw_text, pub_date, flagged in legacy.rows("legacy_messages"):
        text = as_text(raw_text)
        if author_id not in all_ids:
            report.skip(report.messages, f"message {message_id}: its author {author_id!r} is not a legacy user",
                        orphan=True)
        elif author_id not in ids:
            report.skip(report.messages, f"message {message_id}: its author {author_id} was not imported")
        elif not isinstance(text, str):
            report.skip(report.messages, f"message {message_id}: the text is not text")
        elif problem := message_problem(text, pub_date):
            report.skip(report.messages, f"message {message_id}: {problem}")
        else:
            batch.append((ids[author_id], text, pub_date, bool(flagged), message_id))
            if len(batch) >= BATCH_SIZE:
                await flush()
    await flush()


async def import_follows(db: Session, legacy: LegacyDatabase, report: ImportReport,
                         ids: dict[int, int], created: set[int], all_ids: set[int]) -> None:
    pairs: Counter[tuple[int, int]] = Counter()
    for who, whom in legacy.rows("legacy_follows"):
        if who not in all_ids or whom not in all_ids:
            report.skip(report.follows, f"follow {who!r} -> {whom!r}: names a user that is not a legacy user",
                        orphan=True)
        elif who == whom:
            report.skip(report.follows, f"follow {who} -> {whom}: a user cannot follow themselves")
        elif who not in ids or whom not in ids:
            report.skip(report.follows, f"follow {who} -> {whom}: one of the users was not imported")
        else:
            pairs[(who, whom)] += 1
    report.duplicate_follows = sum(count - 1 for count in pairs.values())
    # A follow between two accounts imported earlier was imported then (and may since be undone).
    fresh = [(ids[who], ids[whom]) for who, whom in pairs if who in created or whom in created]
    status = await db.execute("import_legacy_follows", follower_ids=[pair[0] for pair in fresh],
                              followed_ids=[pair[1] for pair in fresh])
    report.follows.new = int(status.split()[-1])
    report.follows.present = len(pairs) - report.follows.new


async def import_legacy(url: str, legacy: LegacyDatabase) -> ImportReport:
    """Imports everything in one transaction; a failure leaves the database as it was."""
    report = ImportReport()
    async with Database.single_session(url) as db, db.transaction():
        ids, created, all_ids = await import_users(db, legacy, report)
        report.look_alikes = await usernames.fill_missing_keys(db)
        await import_messages(db, legacy, report, ids, all_ids)
        await import_follows(db, legacy, report, ids, created, all_ids)
    return report


def run_import(settings: Settings, args: argparse.Namespace) -> int:
    """Migrates, imports the legacy database, and prints what it did."""
    try:
        legacy = LegacyDatabase(args.path)
        try:
            with database_url(settings) as url:
                migrations.apply(url)
                report = asyncio.run(import_legacy(url, legacy))
        finally:
            legacy.close()
    except (LegacyError, sqlite3.DatabaseError) as error:
        print(f"minitwit import-legacy: {error}", file=sys.stderr)
        return 2
    print(f"imported from {args.path}")
    print(report.render())
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "import-legacy", help="import users, messages and follows from the original MiniTwit's SQLite database"
    )
    parser.add_argument("path", type=Path, help="the original MiniTwit's database file (minitwit.db)")
    parser.set_defaults(run=run_import)
