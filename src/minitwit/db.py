"""The database: a ``databases`` pool on asyncpg, and named queries from ``sql/`` run through it.

``databases`` opens and closes the asyncpg pool (``Database.connect``/``disconnect``). A request
takes one connection from that pool for its whole life (``Database.session``; a password hash
runs without it, ``Session.without_connection``) and runs the named queries on it as asyncpg
prepared statements (asyncpg caches them per connection): the cheap way, since ``databases``'
own ``fetch_all(text, values)`` recompiles the SQL through SQLAlchemy on every call. The
connection is taken from the asyncpg pool itself, not through ``databases``' per-task
``Connection`` wrapper (a lock, a counter and a task lookup a request), and transactions are
asyncpg's: the same commit/rollback block for a fraction of the cost (docs/performance.md).

Pool settings (measured, see docs/performance.md): a connection prepares a named query the
first time it runs it and keeps it in asyncpg's statement cache, so parsing and planning are
paid once per connection and query. Preparing all of ``sql/`` whenever a connection opened
cost about 20 ms of the worker's CPU and 65 ms of waiting per connection, paid by the requests
that made the pool grow: under the first burst of load, sign-ups queued behind it. A
connection goes back to the pool without asyncpg's default reset (``SELECT
pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``, one extra round trip per
request), because MiniTwit never changes session state: no SET, LISTEN, cursors or session
advisory locks on pooled connections. An open transaction is still rolled back on release
(asyncpg does that before calling ``reset``).

A session's connection is not even handed back to asyncpg when it ends well: it goes straight
to the request that has waited longest for one (``Database.hand_over``), or waits in
``Database.idle`` for the next session, which takes it without an await. asyncpg's acquire and
release cost about as much of the app's CPU as the query itself (a task to shield the release,
a timeout block, an inactivity timer, a new proxy). So a request waits for a connection in the
app's own queue (``Database.waiters``), not in asyncpg's: once every connection of the pool is
out, a busy worker would otherwise pay asyncpg's release and acquire on every request. Anything
unusual sends a connection back through asyncpg: an error from the database, a cancelled
request, a transaction left open, a closed connection (asyncpg then reopens it), and shutdown;
the first waiter is then told that asyncpg has a connection free.

Faults (see DatabaseLimits in settings.py): taking a connection waits at most
``acquire_timeout_seconds``; PostgreSQL cancels any statement after ``statement_timeout`` and
ends a session idle in a transaction; TCP keepalives run on both ends of every connection. A
database that is down, restarting, saturated or stuck surfaces as ``DatabaseUnavailable``
(a 503), whatever the driver called it. asyncpg's pool takes back a connection that closes, even
one kept idle here, and replaces it when next taken, so the pool heals by itself once
PostgreSQL is back.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import databases
from loguru import logger

from minitwit.errors import DatabaseUnavailable
from minitwit.paths import SQL_DIR
from minitwit.queries import Query, load_queries
from minitwit.settings import DatabaseLimits

Row = Any  # an asyncpg Record: row["column"]
T = TypeVar("T")
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


def still_open(connection: Any) -> bool:
    """Whether a pooled connection is open and still ours: when one closes, asyncpg's pool takes
    it back at once, and its proxy then refuses every call."""
    try:
        return not connection.is_closed()
    except asyncpg.InterfaceError:
        return False


def unavailable(error: BaseException) -> DatabaseUnavailable:
    reason = "statement_timeout" if isinstance(error, asyncpg.QueryCanceledError) else "unreachable"
    return DatabaseUnavailable(reason, f"{type(error).__name__}: {error}".strip())


class Session:
    """One connection held for one unit of work (a request, a CLI command)."""

    def __init__(self, scope: SessionScope, queries: dict[str, Query], observe: QueryObserver | None) -> None:
        self._scope = scope  # holds the connection: None while it is handed back
        self._queries = queries
        self._observe = observe

    async def without_connection(self, work: Callable[..., Awaitable[T]], *arguments: Any) -> T:
        """Awaits ``work(*arguments)`` with the connection handed back, then takes one again for
        the rest of the unit: for CPU work in a thread (a password hash: 20-60 ms, and longer
        while other hashes queue for the thread pool) that would otherwise keep one of the
        pool's few connections idle, so that a burst of sign-ups cannot starve every other
        request. Inside a transaction the connection is kept (handing it back would roll the
        transaction back). DatabaseUnavailable when no connection is to be had afterwards; the
        session has none then, so that it cannot use one that another request took meanwhile."""
        scope = self._scope
        if still_open(scope.connection) and scope.connection.is_in_transaction():
            return await work(*arguments)
        await scope.hand_back()
        try:
            return await work(*arguments)
        finally:
            await scope.take()

    async def _run(self, method: str, name: str, values: dict[str, object]) -> Any:
        """Runs the named query through the connection's ``method`` (fetch, fetchrow, ...), timed
        for the metrics. One coroutine per query: the four methods below hand theirs over."""
        query = self._queries[name]
        connection = self._scope.connection
        started = time.perf_counter()
        try:
            # Looked up in here: a connection lost under the block fails at the lookup itself.
            return await getattr(connection, method)(query.positional_sql, *query.arguments(values))
        except Exception as error:
            if database_failed(error, connection):
                raise unavailable(error) from error
            raise
        finally:
            if self._observe is not None:
                self._observe(name, time.perf_counter() - started)

    def fetch_all(self, name: str, **values: object) -> Awaitable[list[Row]]:
        return self._run("fetch", name, values)

    def fetch_one(self, name: str, **values: object) -> Awaitable[Row | None]:
        return self._run("fetchrow", name, values)

    def fetch_value(self, name: str, **values: object) -> Awaitable[Any]:
        return self._run("fetchval", name, values)

    def execute(self, name: str, **values: object) -> Awaitable[str]:
        """Runs a statement; returns PostgreSQL's status tag (e.g. ``DELETE 1``)."""
        return self._run("execute", name, values)

    def transaction(self) -> Any:
        """``async with db.transaction():`` commits the block, or rolls it back if it raises."""
        return self._scope.connection.transaction()


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

    __slots__ = ("_database", "connection")

    def __init__(self, database: Database) -> None:
        self._database = database
        self.connection: Any = None  # the block's, while it has one (its Session reads it here)

    async def __aenter__(self) -> Session:
        await self.take()
        database = self._database
        return Session(self, database.queries, database.observe)

    async def take(self) -> None:
        """Takes a connection for the block: on entry, and after Session.without_connection."""
        database = self._database
        database.sessions_open += 1
        idle = database.idle
        if idle and still_open(idle[-1]):  # the usual case: the connection a session kept, no wait
            self.connection = idle.pop()
        else:
            try:
                self.connection = await database.acquire()
            except BaseException:
                database.sessions_open -= 1
                raise

    async def hand_back(self, error: BaseException | None = None) -> None:
        """Returns the block's connection: to a waiting request or kept for the next session,
        unless the database failed, the request was cancelled (BaseException: asyncpg may still
        be cancelling a statement), or the connection is closed or inside a transaction; then
        it goes back through asyncpg. Raises DatabaseUnavailable when ``error`` was the
        database's failure."""
        connection, self.connection = self.connection, None
        database = self._database
        # Failed under the block, outside Session's queries (BEGIN, COMMIT)? Asked before the
        # release: a released connection answers nothing.
        failed = error is not None and database_failed(error, connection)
        database.sessions_open -= 1
        if (not failed and isinstance(error, Exception | None)
                and still_open(connection) and not connection.is_in_transaction()):
            database.hand_over(connection)  # no reset, no task
        else:
            await database.give_back(connection)
        if error is not None and failed:
            raise unavailable(error) from error

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: Any) -> None:
        if self.connection is not None:  # None: taking one again failed, and that error goes on
            await self.hand_back(error)


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
        # Connections that sessions gave back, kept out of asyncpg's pool for the next session
        # (last in, first out). asyncpg's acquire and release (its reset, a task to shield the
        # release, timers) cost about as much CPU as a simulator request's query; a session
        # that finds one here takes it without a wait. A connection goes back to asyncpg's pool
        # when something may be wrong with it (docs/performance.md).
        self.idle: list[Any] = []
        # Requests waiting for a connection while all of the pool's are out (first come, first
        # served): each is a future that a session ending well resolves with its connection,
        # or with None once a connection went back to asyncpg, which then has one free.
        self.waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        # Connections taken from asyncpg's pool and not given back (the kept ones included), so
        # that a request knows, without asking asyncpg, whether it would have to wait there.
        # asyncpg also takes back a connection that closes; the count follows when it is next
        # given back here (a closed connection always is).
        self.taken = 0
        self._database = databases.Database(
            url,
            # No floor: asyncpg would keep retrying it (a traceback a second) while PostgreSQL
            # is away. ``connect`` opens the first connections itself instead.
            min_size=0,
            max_size=pool_size,
            init=self._set_up_connection,
            reset=_keep_session,
            statement_cache_size=max(100, 2 * len(self.queries)),
            server_settings=server_settings(limits),
            **({} if limits is None else {  # type: ignore[arg-type]
                "timeout": limits.acquire_timeout_seconds,  # asyncpg's bound on opening one connection
                # A backstop on the client's side, should the server never answer the cancel.
                "command_timeout": limits.statement_timeout_seconds + 5,
            }),
        )

    async def acquire(self) -> Any:
        """A kept connection still open, one from asyncpg's pool while it has one free, or the next
        connection a session hands over, within the acquire timeout; DatabaseUnavailable
        otherwise."""
        while self.idle:
            connection = self.idle.pop()
            if still_open(connection):
                return connection
            await self.give_back(connection)  # asyncpg replaces it when next taken
        if self.taken < self.pool_size:
            # A connection is free: taking it cannot wait for another request, so the timer
            # below (a timer handle per request) is not needed. Opening a new one is bounded by
            # the pool's own connect timeout.
            return await self._take_from_pool()
        try:
            async with asyncio.timeout(self._acquire_timeout):
                while True:
                    connection = await self._wait_for_turn()
                    if connection is None:  # one went back to asyncpg: take it there
                        if self.taken < self.pool_size:
                            return await self._take_from_pool()
                    elif still_open(connection):
                        return connection
                    else:  # closed since it was handed over
                        await self.give_back(connection)
        except TimeoutError as error:
            raise DatabaseUnavailable("pool_timeout", "no connection within the acquire timeout") from error

    async def _take_from_pool(self) -> Any:
        """A connection from asyncpg's pool, which has one free (``taken`` says so), opening it
        if need be; DatabaseUnavailable when the database cannot be reached."""
        self.taken += 1
        try:
            return await self.pool.acquire()
        except BaseException as error:
            self.taken -= 1
            self.hand_over(None)  # the place is free again: the next waiter tries for itself
            if isinstance(error, UNAVAILABLE):  # opening a new connection
                raise unavailable(error) from error
            raise

    async def _wait_for_turn(self) -> Any:
        """Queues behind the requests already waiting, until ``hand_over`` gives this one a
        connection, or None when asyncpg's pool has one free."""
        turn = asyncio.get_running_loop().create_future()
        self.waiters.append(turn)
        try:
            return await turn
        except BaseException:  # timed out or cancelled
            if turn.done() and not turn.cancelled():
                self.hand_over(turn.result())  # handed over just as the wait ended: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self.waiters.remove(turn)
            raise

    def hand_over(self, connection: Any) -> None:
        """Gives a connection that a session ended well with (None: a free place in asyncpg's
        pool) to the request that has waited longest, or keeps it for the next session."""
        waiters = self.waiters
        while waiters:
            turn = waiters.popleft()
            if not turn.done():
                turn.set_result(connection)
                return
        if connection is not None:
            self.idle.append(connection)

    async def give_back(self, connection: Any) -> None:
        """Hands a connection back to asyncpg's pool: ROLLBACK first if a transaction is open, a
        closed one terminated (and replaced when next taken). The request waiting longest is
        then told that asyncpg has one free."""
        pool = self._open_pool()
        if pool is None:
            return  # the pool is closed, and its connections with it
        try:
            await pool.release(connection)
        except UNAVAILABLE as failure:
            raise unavailable(failure) from failure
        finally:
            self.taken -= 1
            self.hand_over(None)

    async def _set_up_connection(self, connection: Any) -> None:
        """A new connection's set-up: TCP keepalives. Its statements are prepared as they are
        first used (asyncpg's statement cache), not all here: see the module docstring."""
        enable_keepalive(connection, self.limits or DatabaseLimits())

    async def connect(self) -> None:
        """Starts the pool and opens its first connections, ready for the first requests. A
        database that is away does not stop a worker from starting: it answers 503 until
        PostgreSQL is back (``serve`` has waited for it before starting workers)."""
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
        while self.idle:
            with contextlib.suppress(DatabaseUnavailable):  # closing the pool cuts it anyway
                await self.give_back(self.idle.pop())
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
        return pool.get_size(), pool.get_size() - pool.get_idle_size() - len(self.idle)
