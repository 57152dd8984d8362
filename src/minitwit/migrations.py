"""Schema migrations (yoyo, plain SQL in migrations/), applied by one process at a time.

Replicas that start together all call ``apply``; a PostgreSQL advisory lock lets one apply the
pending migrations while the others wait and then find nothing to do. Unlike yoyo's own lock
table, an advisory lock dies with its connection, so a killed applier never blocks the next.
Taking the lock waits, like connecting, at most ``wait_seconds`` (DB_CONNECT_TIMEOUT_SECONDS),
with a log line per attempt (minitwit.startup).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from yoyo import get_backend, read_migrations

from minitwit.paths import MIGRATIONS_DIR

# An arbitrary constant that names "MiniTwit schema migrations" among advisory locks.
MIGRATION_LOCK_KEY = 0x4D696E6954776974  # "MiniTwit"
DEFAULT_WAIT = 60.0  # seconds; DatabaseLimits.connect_timeout_seconds' default


def libpq_url(database_url: str) -> str:
    """The URL as libpq and psycopg read it (no SQLAlchemy-style driver suffix)."""
    scheme, sep, rest = database_url.partition("://")
    return "postgresql://" + rest if sep and scheme.startswith("postgres") else database_url


def yoyo_url(database_url: str) -> str:
    """yoyo needs a synchronous driver; psycopg 3 is the one installed."""
    return "postgresql+psycopg://" + libpq_url(database_url).partition("://")[2]


@contextmanager
def migration_lock(database_url: str, wait_seconds: float = DEFAULT_WAIT) -> Iterator[None]:
    from minitwit import startup  # imported here: startup uses libpq_url from this module

    def take() -> psycopg.Connection:
        connection = startup.connect(database_url)
        row = connection.execute("SELECT pg_try_advisory_lock(%s)", (MIGRATION_LOCK_KEY,)).fetchone()
        if row and row[0]:
            return connection
        connection.close()
        raise startup.WaitingFor("the migration lock is held by another process applying migrations")

    with startup.retry(take, database_url, wait_seconds) as connection:
        try:
            yield
        finally:
            connection.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))


@contextmanager
def _backend(database_url: str) -> Iterator[tuple[Any, Any]]:
    """yoyo's backend for the database and the migrations of migrations/, closed afterwards."""
    backend = get_backend(yoyo_url(database_url))
    try:
        yield backend, read_migrations(str(MIGRATIONS_DIR))
    finally:
        backend.connection.close()


def pending(database_url: str) -> list[str]:
    """Ids of the migrations not yet applied."""
    with _backend(database_url) as (backend, known):
        return [migration.id for migration in backend.to_apply(known)]


def apply(database_url: str, wait_seconds: float = DEFAULT_WAIT) -> list[str]:
    """Applies pending migrations under the lock; returns the ids applied by this process."""
    with migration_lock(database_url, wait_seconds), _backend(database_url) as (backend, known):
        todo = backend.to_apply(known)
        backend.apply_migrations(todo)
        return [migration.id for migration in todo]


def rollback_latest(database_url: str, wait_seconds: float = DEFAULT_WAIT) -> list[str]:
    """Rolls back the most recently applied migration (for operators; see README)."""
    with migration_lock(database_url, wait_seconds), _backend(database_url) as (backend, known):
        latest = backend.to_rollback(known)[:1]
        backend.rollback_migrations(latest)
        return [migration.id for migration in latest]
