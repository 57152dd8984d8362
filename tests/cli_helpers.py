"""Running the ``minitwit`` command as a subprocess, and looking at what it leaves behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import psycopg
from psycopg import sql as pgsql

from minitwit import migrations

# Variables of the developer's or CI's shell that would change what a command under test does.
CONFIG_VARIABLES = (
    "DATABASE_URL", "MINITWIT_ENV", "MINITWIT_DATA_DIR", "SECRET_KEY", "SIMULATOR_USERNAME",
    "SIMULATOR_PASSWORD", "METRICS_TOKEN", "MINITWIT_ALLOWED_HOSTS", "BACKUP_DIR", "BACKUP_KEEP", "SENTRY_DSN",
)


def clean_environment(data_dir: Path, **variables: str) -> dict[str, str]:
    """os.environ without MiniTwit's configuration (nor its *_FILE forms), plus ``variables``."""
    environment = {
        key: value for key, value in os.environ.items()
        if key.removesuffix("_FILE") not in CONFIG_VARIABLES
    }
    environment.update({"LOG_LEVEL": "WARNING", "LOG_FORMAT": "text", "MINITWIT_DATA_DIR": str(data_dir)})
    environment.update(variables)
    return environment


def minitwit(*args: str, data_dir: Path, database_url: str | None = None, timeout: float = 120,
             **variables: str) -> subprocess.CompletedProcess[str]:
    """Runs ``minitwit ARGS`` to completion; the embedded database lives in ``data_dir`` when no URL is given."""
    environment = clean_environment(data_dir, **variables)
    if database_url:
        environment["DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "minitwit", *args],
        env=environment, capture_output=True, text=True, timeout=timeout, check=False,
    )


def postgres_processes(data_dir: Path) -> list[psutil.Process]:
    """Live processes whose command line names ``data_dir`` (the embedded postgres and its children)."""
    marker = str(data_dir.resolve())
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        try:
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if any(marker in part for part in process.info["cmdline"] or ()):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return [p for p in found if p.pid != os.getpid()]


def wait_for_no_postgres(data_dir: Path, timeout: float = 15) -> list[psutil.Process]:
    """Waits until no process names ``data_dir``; returns those still there at the deadline."""
    deadline = time.monotonic() + timeout
    while (left := postgres_processes(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def stop_leftover_postgres(data_dir: Path) -> None:
    """Fast shutdown of an embedded postgres that a failed test left running in ``data_dir``."""
    pid_file = data_dir / "pg" / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    if any(process.pid == pid for process in postgres_processes(data_dir)):
        os.kill(pid, signal.SIGINT)  # postgres: SIGINT = fast shutdown
        wait_for_no_postgres(data_dir, timeout=15)


def table_fingerprints(url: str) -> dict[str, tuple[int, str]]:
    """Every table of the public schema: (row count, md5 of all its rows).

    Rows are ordered by their own text form, which is a total order whatever the table's key
    (yoyo's tables included), so equal contents give equal checksums.
    """
    fingerprints = {}
    with psycopg.connect(migrations.libpq_url(url), autocommit=True) as connection:
        tables = connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        ).fetchall()
        for (table,) in tables:
            row = connection.execute(
                pgsql.SQL(
                    "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {} AS t"
                ).format(pgsql.Identifier(table))
            ).fetchone()
            assert row is not None
            fingerprints[table] = (int(row[0]), str(row[1]))
    return fingerprints
