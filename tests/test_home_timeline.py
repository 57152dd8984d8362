"""The home timeline query (own messages and followed users', newest first, keyset pages)."""

from __future__ import annotations

import asyncio

from fixtures import sql

from minitwit import timelines
from minitwit.db import Database


def test_home_timeline_merges_own_and_followed_newest_first(database_url: str) -> None:
    ids = {}
    for name in ("me", "friend", "stranger"):
        ids[name] = sql(database_url, "INSERT INTO users (username, email, pw_hash) VALUES (%s, %s, 'x') "
                                      "RETURNING user_id", name, f"{name}@example.com")[0][0]
    sql(database_url, "INSERT INTO follows (follower_id, followed_id) VALUES (%s, %s)", ids["me"], ids["friend"])
    for n in range(40):  # alternating authors, one second apart, oldest first
        author = ("me", "friend", "stranger")[n % 3]
        sql(database_url, "INSERT INTO messages (author_id, text, pub_date) VALUES "
                          "(%s, %s, TIMESTAMPTZ '2026-01-01 00:00:00+00' + %s * INTERVAL '1 second')",
            ids[author], f"{author} {n}", n)
    sql(database_url, "UPDATE messages SET flagged = true WHERE text = 'friend 37'")

    async def pages() -> tuple[list[str], list[str]]:
        database = Database(database_url, pool_size=1)
        await database.connect()
        try:
            async with database.session() as db:
                first = await timelines.home_timeline(db, ids["me"], limit=10)
                second = await timelines.home_timeline(db, ids["me"], limit=10, before=first.older_than)
                return [m.text for m in first.messages], [m.text for m in second.messages]
        finally:
            await database.disconnect()

    first, second = asyncio.run(pages())
    expected = [f"{('me', 'friend', 'stranger')[n % 3]} {n}" for n in range(39, -1, -1)
                if n % 3 != 2 and n != 37]
    assert first == expected[:10]
    assert second == expected[10:20]
