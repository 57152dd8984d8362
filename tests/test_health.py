"""/health and /ready: what an orchestrator sees while the database or the schema is not there."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from fixtures import LiveServer, ThreadedServer, _admin, make_settings, sql

from minitwit import migrations
from minitwit.app import create_app
from minitwit.operations import known_migrations


def test_health_answers_while_the_process_runs(server: LiveServer) -> None:
    response = server.get("/health")
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_ready_on_a_migrated_database(server: LiveServer) -> None:
    response = server.get("/ready")
    assert response.status_code == 200 and response.json() == {"status": "ready"}


def test_not_ready_while_a_migration_is_pending(server: LiveServer) -> None:
    latest = known_migrations()[-1]
    sql(server.database_url, "DELETE FROM _yoyo_migration WHERE migration_id = %s", latest)
    response = server.get("/ready")
    assert response.status_code == 503
    assert response.json() == {"status": "migrating", "pending": [latest]}
    assert server.get("/health").status_code == 200  # alive, only not ready


def test_not_ready_on_a_database_never_migrated(empty_database_url: str) -> None:
    with ThreadedServer(create_app(make_settings(), empty_database_url)) as url:
        response = LiveServer(url, empty_database_url).get("/ready")
    assert response.status_code == 503
    assert response.json() == {"status": "migrating", "pending": list(known_migrations())}


def test_not_ready_when_the_database_is_unreachable(server: LiveServer, postgres_admin_url: str) -> None:
    assert server.get("/ready").status_code == 200
    name = urlsplit(server.database_url).path.lstrip("/")
    with _admin(postgres_admin_url) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    started = time.monotonic()
    response = server.get("/ready")
    assert response.status_code == 503 and response.json()["status"] == "unavailable"
    assert time.monotonic() - started < 5
    assert server.get("/health").status_code == 200


def test_the_cheap_check_agrees_with_yoyo(empty_database_url: str, database_url: str) -> None:
    """/ready compares yoyo's table with the files read once; yoyo itself must see the same."""
    assert migrations.pending(empty_database_url) == list(known_migrations())
    assert migrations.pending(database_url) == []
    assert {row[0] for row in sql(database_url, "SELECT migration_id FROM _yoyo_migration")} == set(known_migrations())
