"""The database: a ``databases`` pool on asyncpg, and named queries from ``sql/`` run through it.

A request takes one pooled connection for its whole life (``Database.session``) and runs the
named queries on it. They run as asyncpg prepared statements on that connection (asyncpg caches
them per connection), which is the cheap way through the ``databases`` library: its own
``fetch_all(text, values)`` recompiles the SQL through SQLAlchemy on every call.

Pool settings (measured, see docs/performance.md): every connection prepares all
named queries when it opens, so no request pays for parsing or planning; and a connection goes
back to the pool without asyncpg's default reset (``SELECT pg_advisory_unlock_all(); CLOSE ALL;
UNLISTEN *; RESET ALL``, one extra round trip per request), because MiniTwit never changes
session state: no SET, LISTEN, cursors or session advisory locks on pooled connections. An
open transaction is still rolled back on release (asyncpg does that before calling ``reset``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import databases

from minitwit.paths import SQL_DIR
from minitwit.queries import Query, load_queries

Row = Any  # an asyncpg Record: row["column"]
QueryObserver = Callable[[str, float], None]  # (query name, seconds)


class Session:
    """One connection held for one unit of work (a request, a CLI command)."""

    def __init__(
        self, connection: databases.core.Connection, queries: dict[str, Query], observe: QueryObserver | None
    ) -> None:
        self._connection = connection
        self._queries = queries
        self._observe = observe

    def _prepare(self, name: str, values: dict[str, object]) -> tuple[Any, str, list[object]]:
        query = self._queries[name]
        return self._connection.raw_connection, query.positional_sql, query.arguments(values)

    async def _timed(self, name: str, call: Any) -> Any:
        started = time.perf_counter()
        try:
            return await call
        finally:
            if self._observe is not None:
                self._observe(name, time.perf_counter() - started)

    async def fetch_all(self, name: str, **values: object) -> list[Row]:
        raw, sql, args = self._prepare(name, values)
        return await self._timed(name, raw.fetch(sql, *args))

    async def fetch_one(self, name: str, **values: object) -> Row | None:
        raw, sql, args = self._prepare(name, values)
        return await self._timed(name, raw.fetchrow(sql, *args))

    async def fetch_value(self, name: str, **values: object) -> Any:
        raw, sql, args = self._prepare(name, values)
        return await self._timed(name, raw.fetchval(sql, *args))

    async def execute(self, name: str, **values: object) -> str:
        """Runs a statement; returns PostgreSQL's status tag (e.g. ``DELETE 1``)."""
        raw, sql, args = self._prepare(name, values)
        return await self._timed(name, raw.execute(sql, *args))

    def transaction(self) -> databases.core.Transaction:
        return self._connection.transaction()


async def _keep_session(connection: Any) -> None:
    """The pool's ``reset``: nothing to undo (see the module docstring)."""


class Database:
    """The application's pool and its named queries, loaded once at start-up.

    ``pool_size`` is per process (each uvicorn worker has its own pool): the connections a worker
    keeps open, and the most requests it runs against the database at once.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        observe: QueryObserver | None = None,
        queries: dict[str, Query] | None = None,
    ) -> None:
        self.queries = load_queries(SQL_DIR) if queries is None else queries
        self.pool_size = pool_size
        self.observe = observe
        self._database = databases.Database(
            url,
            min_size=min(2, pool_size),
            max_size=pool_size,
            init=self._prepare_all,
            reset=_keep_session,
            statement_cache_size=max(100, 2 * len(self.queries)),
        )

    async def _prepare_all(self, connection: Any) -> None:
        """Prepares every named query on a new connection (asyncpg keeps them in its cache)."""
        for query in self.queries.values():
            # A missing table means a pending migration (/ready says so): that query fails when used.
            with contextlib.suppress(asyncpg.UndefinedTableError):
                await connection.prepare(query.positional_sql)

    async def connect(self) -> None:
        await self._database.connect()

    async def disconnect(self) -> None:
        await self._database.disconnect()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        async with self._database.connection() as connection:
            yield Session(connection, self.queries, self.observe)

    def pool_stats(self) -> tuple[int, int]:
        """(connections open, connections in use) of the asyncpg pool, for metrics."""
        pool = getattr(self._database._backend, "_pool", None)
        if pool is None:
            return 0, 0
        return pool.get_size(), pool.get_size() - pool.get_idle_size()
