"""Resolving the database for a command: DATABASE_URL, or the embedded PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from minitwit.embedded import EmbeddedPostgres
from minitwit.settings import Settings


@contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """The database URL for the duration of a command; an embedded server starts and stops with it."""
    if settings.database_url:
        yield settings.database_url
        return
    embedded = EmbeddedPostgres(settings.data_dir)
    url = embedded.start()
    try:
        yield url
    finally:
        embedded.stop()
