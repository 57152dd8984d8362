"""The security migrations (0003.*) apply, roll back and apply again on a real PostgreSQL."""

from __future__ import annotations

from fixtures import sql

from minitwit import migrations

SECURITY_MIGRATIONS = {"0003.login-throttle", "0003.legacy-import"}


def columns(url: str, table: str) -> set[str]:
    rows = sql(url, "SELECT column_name FROM information_schema.columns WHERE table_name = %s", table)
    return {row[0] for row in rows}


def test_security_migrations_roll_back_and_reapply(empty_database_url: str) -> None:
    url = empty_database_url
    assert set(migrations.apply(url)) >= SECURITY_MIGRATIONS
    assert "legacy_user_id" in columns(url, "users") and columns(url, "throttle")
    undone: set[str] = set()
    while not undone >= SECURITY_MIGRATIONS:
        undone |= set(migrations.rollback_latest(url))
    assert "legacy_user_id" not in columns(url, "users") and not columns(url, "throttle")
    assert set(migrations.apply(url)) >= SECURITY_MIGRATIONS
    assert migrations.pending(url) == []
