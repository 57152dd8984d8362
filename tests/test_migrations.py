"""Migrations: applied once, reported while pending, reversible."""

from __future__ import annotations

import threading

import psycopg
from fixtures import sql

from minitwit import migrations

TABLES = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN ('users', 'messages', 'follows', 'simulator_latest')"


def test_apply_pending_and_rollback(empty_database_url: str) -> None:
    all_ids = migrations.pending(empty_database_url)
    assert all_ids and all_ids[0] == "0001.initial-schema"
    assert migrations.apply(empty_database_url) == all_ids
    assert migrations.pending(empty_database_url) == []
    assert migrations.apply(empty_database_url) == []  # nothing left to do
    assert sql(empty_database_url, TABLES)[0][0] == 4
    assert sql(empty_database_url, "SELECT action_id FROM simulator_latest") == [(-1,)]
    while migrations.rollback_latest(empty_database_url):
        pass
    assert sql(empty_database_url, TABLES)[0][0] == 0
    assert migrations.pending(empty_database_url) == all_ids


def test_concurrent_appliers_apply_each_migration_once(empty_database_url: str) -> None:
    results: list[list[str]] = []
    barrier = threading.Barrier(4)

    def applier() -> None:
        barrier.wait()
        results.append(migrations.apply(empty_database_url))

    threads = [threading.Thread(target=applier) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    applied = sorted(m for result in results for m in result)
    assert len(results) == 4
    assert len(applied) == len(set(applied))  # no migration applied twice
    assert sql(empty_database_url, "SELECT count(*) FROM _yoyo_migration")[0][0] == len(applied)
    assert migrations.pending(empty_database_url) == []


def test_constraints_a_dba_would_sign_off(database_url: str) -> None:
    sql(database_url, "INSERT INTO users (username, email, pw_hash) VALUES ('a', 'a@b', 'h'), ('b', 'b@c', 'h')")
    checks = [
        "INSERT INTO users (username, email, pw_hash) VALUES ('a', 'x@y', 'h')",  # unique username
        "INSERT INTO users (username, email, pw_hash) VALUES ('', 'x@y', 'h')",
        "INSERT INTO users (username, email, pw_hash) VALUES ('c', 'no-at', 'h')",
        "INSERT INTO messages (author_id, text) VALUES (999, 'orphan')",  # foreign key
        "INSERT INTO messages (author_id, text) SELECT user_id, '' FROM users LIMIT 1",
        "INSERT INTO messages (author_id, text) SELECT user_id, repeat('x', 1001) FROM users LIMIT 1",
        "INSERT INTO follows SELECT user_id, user_id FROM users LIMIT 1",  # no self-follow
        "INSERT INTO follows (follower_id, followed_id) VALUES (1, 999)",
        "INSERT INTO simulator_latest (singleton, action_id) VALUES (true, 5)",  # one row only
    ]
    for statement in checks:
        try:
            sql(database_url, statement)
        except psycopg.errors.IntegrityError:
            continue
        raise AssertionError(f"accepted: {statement}")
