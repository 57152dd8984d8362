"""The database: a ``databases`` pool on asyncpg, and named queries from ``sql/`` run through it.

``databases`` opens and closes the asyncpg pool (``Database.connect``/``disconnect``). A request
takes one connection from that pool for its whole life (``Database.session``) and runs the
named queries on it as asyncpg prepared statements (asyncpg caches them per connection): the
cheap way, since ``databases``' own ``fetch_all(text, values)`` recompiles the SQL through
SQLAlchemy on every call. The connection is taken from the asyncpg pool itself, not through
``databases``' per-task ``Connection`` wrapper (a lock, a counter and a task lookup a request),
and transactions are asyncpg's: the same commit/rollback block for a fraction of the cost
(docs/performance.md).

Pool settings (measured, see docs/performance.md): every connection prepares all
named queries when it opens, so no request pays for parsing or planning; and a connection goes
back to the pool without asyncpg's default reset (``SELECT pg_advisory_unlock_all(); CLOSE ALL;
UNLISTEN *; RESET ALL``, one extra round trip per request), because MiniTwit never changes
session state: no SET, LISTEN, cursors or session advisory locks on pooled connections. An
open transaction is still rolled back on release (asyncpg does that before calling ``reset``).

Faults (see DatabaseLimits in settings.py): taking a connection waits at most
``acquire_timeout_seconds``; PostgreSQL cancels any statement after ``statement_timeout`` and
ends a session idle in a transaction; TCP keepalives run on both ends of every connection. A
database that is down, restarting, saturated or stuck surfaces as ``DatabaseUnavailable``
(a 503), whatever the driver called it. asyncpg's pool replaces a connection that died when it
is next taken, so the pool heals by itself once PostgreSQL is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import databases
from loguru import logger

from minitwit.errors import DatabaseUnavailable
from minitwit.paths import SQL_DIR
from minitwit.queries import Query, load_queries
from minitwit.settings import DatabaseLimits

Row = Any  # an asyncpg Record: row["column"]
QueryObserver = Callable[[str, float], None]  # (query name, seconds)
APPLICATION_NAME = "minitwit"  # in pg_stat_activity, so that a DBA can tell the app's sessions

# What the driver raises when the database, not the request, is the problem: the server is
# unreachable (OSError: refused, reset, timed out), shutting down or starting up (class 57),
# the connection broke (class 08), or there are no connection slots left (class 53).
UNAVAILABLE = (
    OSError,  # TimeoutError included
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # QueryCanceledError: statement_timeout
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.IdleInTransactionSessionTimeoutError,
)


def database_failed(error: BaseException, connection: Any) -> bool:
    """Whether ``error``, raised while ``connection`` was held, is the database's failure rather
    than the program's: one of UNAVAILABLE, or asyncpg's InterfaceError on a connection that the
    server closed after it was taken, e.g. between two statements of one request (PostgreSQL
    killed while a sign-up hashed its password). asyncpg then says "connection is closed", or, as
    its pool's proxy lets go of a connection that closes, "connection has been released back to
    the pool" (a Session never outlives its block, so within the block that can only be the
    close). Any other InterfaceError (two operations at once) stays a bug."""
    if isinstance(error, UNAVAILABLE):
        return True
    if not isinstance(error, asyncpg.InterfaceError):
        return False
    try:
        return bool(connection.is_closed())
    except asyncpg.InterfaceError:  # the proxy has let go: the connection closed
        return True


def unavailable(error: BaseException) -> DatabaseUnavailable:
    reason = "statement_timeout" if isinstance(error, asyncpg.QueryCanceledError) else "unreachable"
    return DatabaseUnavailable(reason, f"{type(error).__name__}: {error}".strip())


class Session:
    """One connection held for one unit of work (a request, a CLI command)."""

    def __init__(self, connection: Any, queries: dict[str, Query], observe: QueryObserver | None) -> None:
        self._connection = connection
        self._queries = queries
        self._observe = observe

    def _prepare(self, name: str, values: dict[str, object]) -> tuple[Any, str, list[object]]:
        query = self._queries[name]
        return self._connection, query.positional_sql, query.arguments(values)

    async def _timed(self, name: str, call: Callable[[], Awaitable[Any]]) -> Any:
        started = time.perf_counter()
        try:
            return await call()  # called in here: a lost connection fails at the call itself
        except Exception as error:
            if database_failed(error, self._connection):
                raise unavailable(error) from error
            raise
        finally:
            if self._observe is not None:
                self._observe(name, time.perf_counter() - started)

    async def fetch_all(self, name: str, **values: object) -> list[Row]:
        raw, sql, args = self._prepare(name, values)
        return await self._timed(name, lambda: raw.fetch(sql, *args))

    async def fetch_one(self, name: str, **values: object) -> Row | None:
        raw, sql, args = self._prepare(name, values)
        return await self._timed(name, lambda: raw.fetchrow(sql, *args))

    async def fetch_value(self, name: str, **values: object) -> Any:
        raw, sql, args = self._prepare(name, values)
        return await self._timed(name, lambda: raw.fetchval(sql, *args))

    async def execute(self, name: str, **values: object) -> str:
        """Runs a statement; returns PostgreSQL's status tag (e.g. ``DELETE 1``)."""
        raw, sql, args = self._prepare(name, values)
        return await self._timed(name, lambda: raw.execute(sql, *args))

    def transaction(self) -> Any:
        """``async with db.transaction():`` commits the block, or rolls it back if it raises."""
        return self._connection.transaction()


async def _keep_session(connection: Any) -> None:
    """The pool's ``reset``: nothing to undo (see the module docstring)."""


def server_settings(limits: DatabaseLimits | None) -> dict[str, str]:
    """Session settings sent when a pooled connection opens (PostgreSQL's own timeouts, in ms).
    Without limits (operator tools: imports, seeding) statements may run as long as they need."""
    keepalive = limits or DatabaseLimits()
    settings = {
        "application_name": APPLICATION_NAME,
        # The server's end probes an idle client too (and keeps an IPVS flow alive both ways).
        "tcp_keepalives_idle": str(keepalive.keepalive_idle_seconds),
        "tcp_keepalives_interval": str(keepalive.keepalive_interval_seconds),
        "tcp_keepalives_count": str(keepalive.keepalive_count),
    }
    if limits is not None:
        settings["statement_timeout"] = str(round(limits.statement_timeout_seconds * 1000))
        settings["idle_in_transaction_session_timeout"] = str(round(limits.idle_in_transaction_timeout_seconds * 1000))
    return settings


def enable_keepalive(connection: Any, limits: DatabaseLimits) -> None:
    """TCP keepalives on the client's socket: asyncpg has no option for them, and without them a
    connection whose peer vanished (a node gone, a flow dropped) would look open for hours."""
    transport = getattr(connection, "_transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family == socket.AF_UNIX:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, limits.keepalive_idle_seconds)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, limits.keepalive_interval_seconds)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, limits.keepalive_count)


class SessionScope:
    """The context manager behind ``Database.session``. A plain class rather than an
    ``asynccontextmanager`` with an exit stack: every request enters one, and the generator
    machinery cost more than the rest of taking a connection (docs/performance.md)."""

    __slots__ = ("_connection", "_database", "_pool")

    def __init__(self, database: Database) -> None:
        self._database = database
        self._connection: Any = None

    async def __aenter__(self) -> Session:
        database = self._database
        pool = self._pool = database.pool
        # Counted before the wait, so that two requests cannot both count on the last free one.
        free = database.sessions_open < database.pool_size
        database.sessions_open += 1
        try:
            if free:
                # A connection is free: taking it cannot wait for another request, so the
                # timer below (a timer handle per request) is not needed. Opening a new one is
                # bounded by the pool's own connect timeout. Counted here rather than asked of
                # asyncpg, whose get_idle_size() walks every connection of the pool.
                connection = await pool.acquire()
            else:
                async with asyncio.timeout(database._acquire_timeout):
                    connection = await pool.acquire()
        except BaseException as error:
            database.sessions_open -= 1
            if isinstance(error, TimeoutError):
                raise DatabaseUnavailable("pool_timeout", "no connection within the acquire timeout") from error
            if isinstance(error, UNAVAILABLE):  # opening a new connection
                raise unavailable(error) from error
            raise
        self._connection = connection
        return Session(connection, database.queries, database.observe)

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: Any) -> None:
        connection = self._connection
        assert connection is not None
        # Failed under the block, outside Session's queries (BEGIN, COMMIT)? Asked before the
        # release: a released connection answers nothing.
        failed = error is not None and database_failed(error, connection)
        self._database.sessions_open -= 1
        try:
            await self._pool.release(connection)  # ROLLBACK first if a transaction is open
        except UNAVAILABLE as failure:
            raise unavailable(failure) from failure
        if error is not None and failed:
            raise unavailable(error) from error


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
        limits: DatabaseLimits | None = None,
        observe: QueryObserver | None = None,
        queries: dict[str, Query] | None = None,
    ) -> None:
        self.queries = load_queries(SQL_DIR) if queries is None else queries
        self.pool_size = pool_size
        self.limits = limits
        self.observe = observe
        self._acquire_timeout = limits.acquire_timeout_seconds if limits else None
        self.sessions_open = 0  # connections taken (or being taken) by Database.session, not yet given back
        self._database = databases.Database(
            url,
            # No floor: asyncpg would keep retrying it (a traceback a second) while PostgreSQL
            # is away. ``connect`` opens the first connections itself instead.
            min_size=0,
            max_size=pool_size,
            init=self._prepare_all,
            reset=_keep_session,
            statement_cache_size=max(100, 2 * len(self.queries)),
            server_settings=server_settings(limits),
            **({} if limits is None else {  # type: ignore[arg-type]
                "timeout": limits.acquire_timeout_seconds,  # asyncpg's bound on opening one connection
                # A backstop on the client's side, should the server never answer the cancel.
                "command_timeout": limits.statement_timeout_seconds + 5,
            }),
        )

    async def _prepare_all(self, connection: Any) -> None:
        """Prepares every named query on a new connection (asyncpg keeps them in its cache)."""
        enable_keepalive(connection, self.limits or DatabaseLimits())
        for query in self.queries.values():
            # A missing table means a pending migration (/ready says so): that query fails when used.
            with contextlib.suppress(asyncpg.UndefinedTableError):
                await connection.prepare(query.positional_sql)

    async def connect(self) -> None:
        """Starts the pool and opens its first connections (prepared, ready for the first
        requests). A database that is away does not stop a worker from starting: it answers
        503 until PostgreSQL is back (``serve`` has waited for it before starting workers)."""
        await self._database.connect()

        async def open_one() -> None:
            async with self.session():
                pass

        outcomes = await asyncio.gather(*(open_one() for _ in range(min(2, self.pool_size))), return_exceptions=True)
        failures = [outcome for outcome in outcomes if isinstance(outcome, DatabaseUnavailable)]
        if failures:
            logger.warning("the database is not answering yet; requests get 503 until it does: {}",
                           failures[0].detail or failures[0].reason)
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, DatabaseUnavailable):
                raise outcome

    async def disconnect(self) -> None:
        """Closes the pool; connections still busy after a few seconds are cut (shutdown)."""
        pool = self._open_pool()
        try:
            async with asyncio.timeout(5):
                await self._database.disconnect()
        except TimeoutError:
            if pool is not None:
                pool.terminate()

    def _open_pool(self) -> asyncpg.Pool | None:
        """The asyncpg pool ``databases`` opened in ``connect`` (None before, and after disconnect)."""
        return getattr(self._database._backend, "_pool", None)

    @property
    def pool(self) -> asyncpg.Pool:
        """The asyncpg pool ``databases`` opened in ``connect``."""
        pool = self._open_pool()
        if pool is None:
            raise RuntimeError("the database is not connected (Database.connect)")
        return pool

    def session(self) -> SessionScope:
        """``async with database.session() as db``: one pooled connection for the block;
        DatabaseUnavailable when there is none to have within the acquire timeout, or when the
        database fails under the block."""
        return SessionScope(self)

    @classmethod
    @contextlib.asynccontextmanager
    async def single_session(cls, url: str, *, queries: dict[str, Query] | None = None) -> AsyncIterator[Session]:
        """One connection for one piece of work outside the server (a command, an import, a
        seeding), on a pool of its own that is closed afterwards."""
        database = cls(url, pool_size=1, queries=queries)
        await database.connect()
        try:
            async with database.session() as db:
                yield db
        finally:
            await database.disconnect()

    def pool_stats(self) -> tuple[int, int]:
        """(connections open, connections in use) of the asyncpg pool, for metrics."""
        pool = self._open_pool()
        if pool is None:
            return 0, 0
        return pool.get_size(), pool.get_size() - pool.get_idle_size()
