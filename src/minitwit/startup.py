"""Waiting for PostgreSQL at start-up, and refusing a database MiniTwit cannot use.

In a container stack the app often starts before its database accepts connections (a first
start runs initdb and restarts the server). ``serve``, ``migrate``, ``backup`` and ``restore``
therefore retry with capped exponential backoff for ``DB_CONNECT_TIMEOUT_SECONDS``, one log line
per attempt naming the server and the reason, then stop with a clear message (``StartupError``,
which the CLI prints as one line and turns into exit status 1): never a traceback for a
database that is merely not there yet.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
from loguru import logger
from psycopg.conninfo import conninfo_to_dict

from minitwit.migrations import libpq_url

T = TypeVar("T")
FIRST_DELAY = 0.5  # seconds before the second attempt; doubles up to MAX_DELAY
MAX_DELAY = 5.0
ATTEMPT_TIMEOUT = 5  # seconds: libpq's connect_timeout for one attempt
# Conditions that waiting cannot cure: the message of the failure says what to fix. A missing
# database is one: PostgreSQL's images create it before they listen on TCP.
HOPELESS = ("password authentication failed", "no pg_hba.conf entry", "does not exist")


class StartupError(RuntimeError):
    """The database did not become usable; the message says why, in one line."""


class WaitingFor(Exception):
    """A condition worth another attempt (e.g. the migration lock is held elsewhere)."""


def target(database_url: str) -> str:
    """``host:port/database`` of a URL, for log lines (never the password)."""
    try:
        params = conninfo_to_dict(libpq_url(database_url))
    except psycopg.ProgrammingError:
        return "the configured database"
    host = str(params.get("host") or "localhost")
    where = host if host.startswith("/") else f"{host}:{params.get('port') or 5432}"
    return f"{where}/{params.get('dbname') or ''}"


def one_line(error: BaseException) -> str:
    """The first line of a driver's message (libpq's run over several)."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0].removeprefix("connection failed: ").strip()


def _next_step(attempt: int, started: float, bound: float, where: str, reason: str) -> float:
    """Logs the failed attempt and returns the pause before the next; StartupError past the bound."""
    if any(marker in reason for marker in HOPELESS):
        raise StartupError(f"cannot use PostgreSQL at {where}: {reason}")
    elapsed = time.monotonic() - started
    if elapsed >= bound:
        raise StartupError(
            f"gave up waiting for PostgreSQL at {where} after {elapsed:.0f} s and {attempt} attempts "
            f"(DB_CONNECT_TIMEOUT_SECONDS={bound:g}): {reason}"
        )
    delay = min(MAX_DELAY, FIRST_DELAY * 2 ** (attempt - 1), bound - elapsed)
    logger.warning("waiting for PostgreSQL at {}: {} (attempt {}, next in {:.1f} s)", where, reason, attempt, delay,
                   host=where, reason=reason, attempt=attempt)
    return delay


def retry(operation: Callable[[], T], database_url: str, bound: float) -> T:
    """``operation()`` until it stops failing to reach the database, for at most ``bound`` seconds."""
    where, started, attempt = target(database_url), time.monotonic(), 0
    while True:
        attempt += 1
        try:
            return operation()
        except (psycopg.OperationalError, WaitingFor) as error:
            time.sleep(_next_step(attempt, started, bound, where, one_line(error)))


def connect(database_url: str) -> psycopg.Connection:
    """One attempt, bounded, with TCP keepalives (a long migration must not lose its flow)."""
    return psycopg.connect(libpq_url(database_url), autocommit=True, connect_timeout=ATTEMPT_TIMEOUT,
                           keepalives=1, keepalives_idle=60, keepalives_interval=10, keepalives_count=6)


def encoding_of(connection: psycopg.Connection) -> str:
    row = connection.execute(
        "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()"
    ).fetchone()
    if not row:
        return "unknown"
    # On a SQL_ASCII database psycopg cannot decode text and hands over bytes.
    return row[0].decode("ascii") if isinstance(row[0], bytes) else str(row[0])


def wait_until_usable(database_url: str, bound: float, *, require_utf8: bool = True) -> None:
    """Returns once the database accepts a connection; StartupError after ``bound`` seconds, or
    at once for a database whose encoding is not UTF8 (text would be mangled or refused)."""

    def check() -> str:
        with connect(database_url) as connection:
            return encoding_of(connection)

    encoding = retry(check, database_url, bound)
    if require_utf8 and encoding != "UTF8":
        raise StartupError(
            f"refusing the database at {target(database_url)}: its encoding is {encoding}, MiniTwit needs UTF8 "
            "(create it with ENCODING 'UTF8', or initdb -E UTF8)"
        )
