"""The simulator's writes run as one statement that also records `latest` (sql/simulator.sql), and
its user reads resolve the name in the same query: every outcome still records `latest`, and an
unknown user is still a 404 while a known one with nothing to show is an empty list."""

from __future__ import annotations

import pytest
from fixtures import SIMULATOR_AUTH, LiveServer, sql

HEADERS = {"Authorization": SIMULATOR_AUTH}


def register(server: LiveServer, name: str) -> None:
    body = {"username": name, "email": f"{name}@example.com", "pwd": "pw"}
    assert server.post("/register", json=body).status_code == 204


def latest(server: LiveServer) -> int:
    return int(server.get("/latest").json()["latest"])


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/msgs/a", {"content": "hello"}, 204),
        ("/msgs/ghost", {"content": "hello"}, 404),
        ("/msgs/a", {"content": ""}, 400),
        ("/fllws/a", {"follow": "b"}, 204),
        ("/fllws/a", {"follow": "a"}, 400),
        ("/fllws/a", {"follow": "ghost"}, 404),
        ("/fllws/ghost", {"follow": "a"}, 404),
        ("/fllws/a", {"unfollow": "b"}, 204),
        ("/fllws/a", {"unfollow": "ghost"}, 404),
        ("/fllws/a", {"neither": "b"}, 400),
    ],
)
def test_every_outcome_records_latest(server: LiveServer, path: str, body: dict, status: int) -> None:
    register(server, "a")
    register(server, "b")
    response = server.post(path, json=body, headers=HEADERS, params={"latest": 4242})
    assert response.status_code == status
    assert latest(server) == 4242


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        ({"username": "new", "email": "new@example.com", "pwd": "pw"}, HEADERS, 204),
        ({"username": "a", "email": "a2@example.com", "pwd": "pw"}, HEADERS, 400),  # taken
        ({"username": "new", "email": "no at sign", "pwd": "pw"}, HEADERS, 400),
        ({"username": "public", "email": "p@example.com", "pwd": "pw"}, HEADERS, 400),  # reserved
        ({"username": "other", "email": "o@example.com", "pwd": "pw"}, {}, 204),  # not the simulator
        ({"username": "a", "email": "a3@example.com", "pwd": "pw"}, {}, 400),
    ],
)
def test_every_sign_up_outcome_records_latest(server: LiveServer, body: dict, headers: dict, status: int) -> None:
    """The simulator's name check records `latest` in the same statement; every other way out
    records it on its own."""
    register(server, "a")
    response = server.post("/register", json=body, headers=headers, params={"latest": 77})
    assert response.status_code == status, response.text
    assert latest(server) == 77
    users = 2 if status == 204 else 1
    assert sql(server.database_url, "SELECT count(*) FROM users")[0][0] == users


def test_refused_write_records_latest(server: LiveServer) -> None:
    register(server, "a")
    response = server.post("/msgs/a", json={"content": "x"}, params={"latest": 99})
    assert response.status_code == 403
    assert latest(server) == 99
    assert sql(server.database_url, "SELECT count(*) FROM messages")[0][0] == 0


def test_writes_without_latest_leave_it_alone(server: LiveServer) -> None:
    register(server, "a")
    register(server, "b")
    server.post("/msgs/a", json={"content": "x"}, headers=HEADERS, params={"latest": 7})
    assert server.post("/msgs/a", json={"content": "y"}, headers=HEADERS).status_code == 204
    assert server.post("/fllws/a", json={"follow": "b"}, headers=HEADERS).status_code == 204
    assert latest(server) == 7
    assert sql(server.database_url, "SELECT count(*) FROM messages")[0][0] == 2
    assert sql(server.database_url, "SELECT count(*) FROM follows")[0][0] == 1


def test_user_reads_known_empty_and_unknown(server: LiveServer) -> None:
    register(server, "quiet")
    assert server.get("/msgs/quiet", headers=HEADERS).json() == []
    assert server.get("/fllws/quiet", headers=HEADERS).json() == {"follows": []}
    assert server.get("/msgs/nobody", headers=HEADERS).status_code == 404
    assert server.get("/fllws/nobody", headers=HEADERS).status_code == 404
    server.post("/msgs/quiet", json={"content": "one"}, headers=HEADERS)
    server.post("/msgs/quiet", json={"content": "two"}, headers=HEADERS)
    got = server.get("/msgs/quiet", headers=HEADERS, params={"no": 1}).json()
    assert [m["content"] for m in got] == ["two"]
    assert server.get("/msgs/quiet", headers=HEADERS, params={"no": 0}).json() == []


def test_follows_read_in_follow_order(server: LiveServer) -> None:
    for name in ("a", "z", "m", "b"):
        register(server, name)
    for name in ("z", "m", "b"):
        server.post("/fllws/a", json={"follow": name}, headers=HEADERS)
    assert server.get("/fllws/a", headers=HEADERS).json() == {"follows": ["z", "m", "b"]}
    assert server.get("/fllws/a", headers=HEADERS, params={"no": 2}).json() == {"follows": ["z", "m"]}
