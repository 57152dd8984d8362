"""The timeline queries are served by indexes at production size: with 1,000,000 messages, 10,000
users and 200,000 follow pairs (seeded as `minitwit bench scale` seeds them), no plan of theirs
reads the messages table sequentially: neither the plan made for the given values nor the
generic plan that PostgreSQL may switch a prepared statement to after five executions."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from fixtures import with_database
from psycopg import sql as pgsql

from minitwit import migrations
from minitwit.bench import seed
from minitwit.paths import SQL_DIR
from minitwit.queries import load_queries

QUERIES = load_queries(SQL_DIR)
MESSAGES = 1_000_000
SHAPE = seed.Shape(users=10_000, follows=200_000)


@pytest.fixture(scope="module")
def large_database(postgres_admin_url: str, template_database: str) -> Iterator[str]:
    name = f"minitwit_plans_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(migrations.libpq_url(postgres_admin_url), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    url = with_database(postgres_admin_url, name)
    try:
        asyncio.run(seed.seed_people(url, SHAPE, pw_hash="not-a-real-hash"))
        asyncio.run(seed.seed_messages(url, SHAPE, 0, MESSAGES))
        yield url
    finally:
        with psycopg.connect(migrations.libpq_url(postgres_admin_url), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def one(connection: psycopg.Connection, statement: str) -> object:
    row = connection.execute(statement).fetchone()
    assert row is not None
    return row[0]


def plans(connection: psycopg.Connection, name: str, values: dict[str, object]) -> dict[str, str]:
    """EXPLAIN of the named query, prepared as the app prepares it, for ``values``: the custom
    plan and the generic plan."""
    query = QUERIES[name]
    arguments = pgsql.SQL(", ").join(pgsql.Literal(v) for v in query.arguments(values))
    found = {}
    connection.execute(pgsql.SQL("PREPARE q AS {}").format(pgsql.SQL(query.positional_sql)))  # type: ignore[arg-type]
    try:
        for mode in ("force_custom_plan", "force_generic_plan"):
            connection.execute(pgsql.SQL("SET plan_cache_mode = {}").format(pgsql.SQL(mode)))
            rows = connection.execute(pgsql.SQL("EXPLAIN EXECUTE q({})").format(arguments)).fetchall()
            found[mode] = "\n".join(row[0] for row in rows)
    finally:
        connection.execute("DEALLOCATE q")
    return found


def sequential_scans(connection: psycopg.Connection) -> list[str]:
    problems = []
    for name, values in cases(connection):
        for mode, plan in plans(connection, name, values).items():
            if "Seq Scan on messages" in plan:
                problems.append(f"{name} {values} ({mode}):\n{plan}")
    return problems


def cases(connection: psycopg.Connection) -> list[tuple[str, dict[str, object]]]:
    home = one(connection, "SELECT user_id FROM users WHERE username = 'bench1'")
    author = one(connection, "SELECT user_id FROM users WHERE username = 'bench7'")
    public_cursor = one(connection, "SELECT message_id FROM messages ORDER BY pub_date DESC, message_id DESC OFFSET 5000 LIMIT 1")
    author_cursor = one(connection, f"SELECT message_id FROM messages WHERE author_id = {author} "
                             "ORDER BY pub_date DESC, message_id DESC OFFSET 60 LIMIT 1")
    home_cursor = one(connection, f"SELECT message_id FROM messages WHERE author_id = {home} + 5 "
                           "ORDER BY pub_date DESC, message_id DESC OFFSET 40 LIMIT 1")
    return [
        ("public_timeline", {"before_id": None, "limit": 30}),
        ("public_timeline", {"before_id": public_cursor, "limit": 30}),
        ("public_timeline", {"before_id": None, "limit": 100}),
        ("user_timeline", {"author_id": author, "before_id": None, "limit": 30}),
        ("user_timeline", {"author_id": author, "before_id": author_cursor, "limit": 30}),
        ("public_timeline_json", {"limit": 100}),
        ("user_timeline_json_by_name", {"username": "bench7", "limit": 100}),
        ("home_timeline", {"user_id": home, "before_id": None, "limit": 30}),
        ("home_timeline", {"user_id": home, "before_id": home_cursor, "limit": 30}),
    ]


def test_seeded_size(large_database: str) -> None:
    with psycopg.connect(migrations.libpq_url(large_database)) as connection:
        assert one(connection, "SELECT count(*) FROM messages") == MESSAGES
        assert one(connection, "SELECT count(*) FROM users") == SHAPE.users
        assert one(connection, "SELECT count(*) FROM follows") == SHAPE.follows
        assert one(connection, "SELECT count(*) FROM follows f JOIN users u ON u.user_id = f.follower_id "
                               "WHERE u.username = 'bench1'") == SHAPE.home_follows


def test_timeline_queries_use_indexes(large_database: str) -> None:
    with psycopg.connect(migrations.libpq_url(large_database), autocommit=True) as connection:
        problems = sequential_scans(connection)
    assert not problems, "\n\n".join(problems)


def test_the_check_sees_a_missing_index(large_database: str) -> None:
    """Without the timeline indexes the same check fails: it can tell."""
    with psycopg.connect(migrations.libpq_url(large_database)) as connection:  # one transaction
        connection.execute("DROP INDEX messages_public_timeline_idx")
        connection.execute("DROP INDEX messages_author_timeline_idx")
        problems = sequential_scans(connection)
        connection.rollback()
    assert any(p.startswith("public_timeline") for p in problems)
    assert any(p.startswith("home_timeline") for p in problems)
