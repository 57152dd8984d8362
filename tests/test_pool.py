"""Sessions hand their connection to a waiting request (db.Database.waiters) or keep it for the
next session (db.Database.idle) only when nothing can be wrong with it; everything else goes
back through asyncpg's pool, which resets, rolls back, closes or replaces it. A real
PostgreSQL, a real asyncpg pool."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from fixtures import sql

from minitwit.db import APPLICATION_NAME, Database
from minitwit.errors import DatabaseUnavailable
from minitwit.settings import DatabaseLimits

T = TypeVar("T")


def with_database(url: str, work: Callable[[Database], Awaitable[T]], *, pool_size: int = 2,
                  acquire_timeout: float = 3.0) -> T:
    async def run() -> T:
        database = Database(url, pool_size=pool_size, limits=DatabaseLimits(acquire_timeout_seconds=acquire_timeout))
        await database.connect()
        try:
            return await work(database)
        finally:
            await database.disconnect()

    return asyncio.run(run())


def open_connections(url: str) -> int:
    rows = sql(url, "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND datname = current_database()",
               APPLICATION_NAME)
    return int(rows[0][0])


def test_a_session_that_ends_well_keeps_its_connection_for_the_next(database_url: str) -> None:
    async def work(database: Database) -> tuple[int, int, bool]:
        async with database.session() as db:
            await db.execute("record_latest", action_id=7)
        kept = len(database.idle)
        first = database.idle[-1]
        async with database.session() as db:
            assert await db.fetch_value("get_latest") == 7
            reused = first not in database.idle and db._scope.connection is first
        return kept, len(database.idle), reused

    # connect opened two connections, one per place in the pool: both kept, the latest reused
    assert with_database(database_url, work) == (2, 2, True)
    assert open_connections(database_url) == 0  # disconnect gave the kept one back and closed it


def test_an_open_transaction_or_a_cancel_sends_it_back_through_asyncpg_an_error_does_not(database_url: str) -> None:
    async def work(database: Database) -> tuple[list[int], object]:
        kept = []
        async with database.session() as db:  # a transaction left open: asyncpg rolls it back
            await db.transaction().start()
            await db.execute("record_latest", action_id=1)
        kept.append(len(database.idle))

        async def held_and_cancelled() -> None:
            async with database.session() as db:
                await db.fetch_value("get_latest")
                await asyncio.sleep(10)

        task = asyncio.ensure_future(held_and_cancelled())
        await asyncio.sleep(0.2)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        kept.append(len(database.idle))

        try:  # a statement refused leaves the connection as it was (no transaction open): kept
            async with database.session() as db:
                await db.execute("record_latest", action_id="not a number")
        except Exception:  # which error asyncpg raises is not the point
            pass
        kept.append(len(database.idle))

        try:
            async with database.session() as db:  # the program's error after a good statement: kept too
                await db.fetch_value("get_latest")
                raise ValueError("refused by a handler")
        except ValueError:
            pass
        kept.append(len(database.idle))
        async with database.session() as db:
            latest = await db.fetch_value("get_latest")
        return kept, latest

    kept, latest = with_database(database_url, work)
    assert kept == [1, 0, 1, 1]  # of the two that connect opened: one left after each send-back
    assert latest == -1  # the open transaction's write was rolled back


def test_requests_waiting_for_the_pool_get_the_connection_a_session_ends_with_in_turn(database_url: str) -> None:
    """With every connection out, a request waits in the app's queue, not asyncpg's: a session
    that ends well hands its very connection (no release, no new proxy) to the request that has
    waited longest."""

    async def work(database: Database) -> tuple[list[str], list[object], int]:
        served: list[str] = []
        connections: list[object] = []

        async def hold(name: str, delay: float, seconds: float) -> None:
            await asyncio.sleep(delay)
            async with database.session() as db:
                await db.fetch_value("get_latest")
                connections.append(db._scope.connection)
                await asyncio.sleep(seconds)
            served.append(name)

        await asyncio.gather(hold("first", 0, 0.5), hold("second", 0.1, 0.1), hold("third", 0.2, 0))
        return served, connections, database.taken

    served, connections, taken = with_database(database_url, work, pool_size=1)
    assert served == ["first", "second", "third"]
    # The same proxy object each time: never given back to asyncpg, which makes a new one per acquire.
    assert all(connection is connections[0] for connection in connections) and taken == 1


def test_a_waiter_cancelled_as_it_is_handed_a_connection_passes_it_on(database_url: str) -> None:
    async def work(database: Database) -> tuple[list[object], int, int, int]:
        async def wait_and_use() -> str:
            async with database.session() as db:
                await db.fetch_value("get_latest")
            return "served"

        async with database.session():
            waiters = [asyncio.ensure_future(wait_and_use()) for _ in range(2)]
            await asyncio.sleep(0.1)
            assert len(database.waiters) == 2
        # The block handed the connection to the first waiter, which has not run since: cancel it.
        waiters[0].cancel()
        outcomes = await asyncio.gather(*waiters, return_exceptions=True)
        return outcomes, len(database.waiters), database.sessions_open, len(database.idle)

    outcomes, waiting, sessions, kept = with_database(database_url, work, pool_size=1)
    assert isinstance(outcomes[0], asyncio.CancelledError) and outcomes[1] == "served", outcomes
    assert (waiting, sessions, kept) == (0, 0, 1)


def test_a_connection_sent_back_through_asyncpg_still_serves_the_waiting_request(database_url: str) -> None:
    """A session that leaves a transaction open sends its connection back through asyncpg (which
    rolls it back); the request waiting meanwhile is told, and takes it from asyncpg's pool."""

    async def work(database: Database) -> tuple[list[object], object]:
        async def leave_a_transaction_open() -> str:
            async with database.session() as db:
                await db.transaction().start()
                await db.execute("record_latest", action_id=3)
                await asyncio.sleep(0.3)
            return "rolled back"

        async def wait_and_read() -> object:
            await asyncio.sleep(0.1)
            async with database.session() as db:
                return await db.fetch_value("get_latest")

        outcomes = await asyncio.gather(leave_a_transaction_open(), wait_and_read(), return_exceptions=True)
        return outcomes, database.taken

    # Not told, the waiter would wait out its 2 s acquire timeout and fail with pool_timeout.
    assert with_database(database_url, work, pool_size=1, acquire_timeout=2.0) == (["rolled back", -1], 1)


def test_a_kept_connection_the_server_closes_is_replaced(database_url: str) -> None:
    async def work(database: Database) -> tuple[int, object]:
        async with database.session() as db:
            await db.fetch_value("get_latest")
        sql(database_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE application_name = %s AND datname = current_database()", APPLICATION_NAME)
        await asyncio.sleep(0.5)  # the loop sees the connection close; asyncpg takes it back
        try:
            async with database.session() as db:
                latest = await db.fetch_value("get_latest")
        except DatabaseUnavailable as error:
            latest = error
        return database.sessions_open, latest

    assert with_database(database_url, work, pool_size=1) == (0, -1)


def test_work_without_the_connection_lets_another_request_use_it(database_url: str) -> None:
    """A sign-up hashing its password hands its connection back meanwhile: with a pool of one,
    another request is served during the hash, and the sign-up goes on with a connection after."""

    async def work(database: Database) -> list[str]:
        order: list[str] = []
        hashing = asyncio.Event()

        async def slow_hash(password: str) -> str:
            hashing.set()
            await asyncio.sleep(0.5)
            order.append("hashed")
            return password[::-1]

        async def sign_up() -> None:
            async with database.session() as db:
                await db.execute("record_latest", action_id=1)
                assert await db.without_connection(slow_hash, "abc") == "cba"
                await db.execute("record_latest", action_id=2)
                order.append("signed up")

        async def other_request() -> None:
            await hashing.wait()
            async with database.session() as db:
                await db.fetch_value("get_latest")
                order.append("served")

        await asyncio.gather(sign_up(), other_request())
        async with database.session() as db:
            order.append(f"latest {await db.fetch_value('get_latest')}")
        return order

    assert with_database(database_url, work, pool_size=1, acquire_timeout=0.3) == [
        "served", "hashed", "signed up", "latest 2"]


def test_work_inside_a_transaction_keeps_the_connection(database_url: str) -> None:
    async def work(database: Database) -> tuple[int, int]:
        async with database.session() as db, db.transaction():
            await db.execute("record_latest", action_id=5)
            await db.without_connection(asyncio.sleep, 0)
            open_during = database.sessions_open
            await db.execute("record_latest", action_id=6)
        async with database.session() as db:
            return open_during, await db.fetch_value("get_latest")

    assert with_database(database_url, work, pool_size=1) == (1, 6)


def test_no_connection_after_the_work_is_unavailable_and_leaves_the_count_right(database_url: str) -> None:
    async def work(database: Database) -> tuple[str, int, object]:
        async def holder_waits_for(release: asyncio.Event) -> None:
            async with database.session() as db:
                await db.fetch_value("get_latest")
                await release.wait()

        release = asyncio.Event()

        async def meanwhile_taken(password: str) -> str:
            holder.append(asyncio.ensure_future(holder_waits_for(release)))
            await asyncio.sleep(0.2)  # the other request now holds the only connection
            return password

        holder: list[asyncio.Future[None]] = []
        sessions = []
        try:
            async with database.session() as db:
                sessions.append(db)
                await db.without_connection(meanwhile_taken, "x")
            outcome = "served"
        except DatabaseUnavailable as error:
            outcome = error.reason
        release.set()
        await asyncio.gather(*holder)
        # The session kept no handle on the connection the other request had taken.
        return outcome, database.sessions_open, sessions[0]._scope.connection

    assert with_database(database_url, work, pool_size=1, acquire_timeout=0.3) == ("pool_timeout", 0, None)
