"""Seeds a database with synthetic users, follows and messages (sql/bench/seed.sql), set-based.

The shape, chosen so that every measured request does the same work at any size: ``active``
users (bench1..bench100) hold ``per_active`` messages each before anything else, so their
pages are full even at 10,000 messages; bench1 follows ``home_follows`` users (bench2..), the
first 99 of them active; the remaining follow pairs and messages are spread over all users.
"""

from __future__ import annotations

from dataclasses import dataclass

from minitwit.db import Database
from minitwit.paths import SQL_DIR
from minitwit.queries import load_queries

SEED_SQL_DIR = SQL_DIR / "bench"
BENCH_PASSWORD = "bench-password"  # nosec B105 - the seeded accounts' password, for /login
ACTIVE_USERS = 100
PER_ACTIVE = 100
HOME_USER = "bench1"


@dataclass(frozen=True)
class Shape:
    users: int = 10_000
    follows: int = 200_000
    home_follows: int = 200
    per_user_follows: int = 20


async def seed_people(url: str, shape: Shape, pw_hash: str) -> None:
    """Users and follow pairs (an empty database first)."""
    async with Database.single_session(url, queries=load_queries(SEED_SQL_DIR)) as db:
        await db.execute("seed_users", count=shape.users, pw_hash=pw_hash)
        await db.execute("seed_home_follows", count=shape.home_follows)
        await db.execute("seed_follows", count=shape.follows - shape.home_follows,
                         per_user=shape.per_user_follows, users=shape.users)


async def seed_messages(url: str, shape: Shape, first: int, count: int) -> None:
    """Messages numbered first..first+count-1 (continue where the last call stopped), then ANALYZE."""
    async with Database.single_session(url, queries=load_queries(SEED_SQL_DIR)) as db:
        await db.execute("seed_messages", first=first, count=count, active=ACTIVE_USERS,
                         per_active=PER_ACTIVE, users=shape.users)
        await db.execute("seed_analyze")
