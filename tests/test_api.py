"""The simulator API over real HTTP (docs/api.md, "Simulator API"), every endpoint and error case."""

from __future__ import annotations

import json

import pytest
import requests
from fixtures import SIMULATOR_AUTH, LiveServer, sql

HEADERS = {"Authorization": SIMULATOR_AUTH, "Content-Type": "application/json"}
NOT_AUTHORIZED = {"status": 403, "error_msg": "You are not authorized to use this resource!"}


def api_register(server: LiveServer, username: str, latest: int | None = None, **fields: str):
    body = {"username": username, "email": f"{username}@example.com", "pwd": "secret"} | fields
    params = {"latest": latest} if latest is not None else None
    return server.post("/register", data=json.dumps(body), headers=HEADERS, params=params)


def tweet(server: LiveServer, username: str, content: str, latest: int | None = None):
    params = {"latest": latest} if latest is not None else None
    return server.post(f"/msgs/{username}", data=json.dumps({"content": content}), headers=HEADERS, params=params)


def follow(server: LiveServer, who: str, body: dict, latest: int | None = None):
    params = {"latest": latest} if latest is not None else None
    return server.post(f"/fllws/{who}", data=json.dumps(body), headers=HEADERS, params=params)


def latest(server: LiveServer) -> int:
    response = server.get("/latest")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    return int(response.json()["latest"])


def test_latest_is_minus_one_before_any_action(server: LiveServer) -> None:
    assert server.get("/latest").json() == {"latest": -1}


def test_course_client_flow(server: LiveServer) -> None:
    """The course's own API test, step by step."""
    assert api_register(server, "a", latest=1, email="a@a.a", pwd="a").status_code == 204
    assert latest(server) == 1
    assert tweet(server, "a", "Blub!", latest=2).status_code == 204
    assert latest(server) == 2
    got = server.get("/msgs/a", headers=HEADERS, params={"no": 20, "latest": 3})
    assert got.status_code == 200 and got.headers["content-type"] == "application/json"
    assert [(m["content"], m["user"]) for m in got.json()] == [("Blub!", "a")]
    assert latest(server) == 3
    got = server.get("/msgs", headers=HEADERS, params={"no": 20, "latest": 4})
    assert got.status_code == 200 and any(m["content"] == "Blub!" and m["user"] == "a" for m in got.json())
    assert latest(server) == 4
    assert api_register(server, "b", latest=5, email="b@b.b", pwd="b").status_code == 204
    assert api_register(server, "c", latest=6, email="c@c.c", pwd="c").status_code == 204
    assert follow(server, "a", {"follow": "b"}, latest=7).status_code == 204
    assert follow(server, "a", {"follow": "c"}, latest=8).status_code == 204
    got = server.get("/fllws/a", headers=HEADERS, params={"no": 20, "latest": 9})
    assert got.status_code == 200 and got.json() == {"follows": ["b", "c"]}
    assert follow(server, "a", {"unfollow": "b"}, latest=10).status_code == 204
    assert server.get("/fllws/a", headers=HEADERS, params={"no": 20, "latest": 11}).json() == {"follows": ["c"]}
    assert latest(server) == 11


def test_message_json_shape(server: LiveServer) -> None:
    api_register(server, "Roger Histand")
    tweet(server, "Roger Histand", "<b>hello</b>")
    [message] = server.get("/msgs/Roger%20Histand", headers=HEADERS).json()
    assert set(message) == {"content", "pub_date", "user"}
    assert message["content"] == "<b>hello</b>" and message["user"] == "Roger Histand"
    assert message["pub_date"].endswith("+00:00") and message["pub_date"][10] == "T"


TRICKY_TEXTS = ['quote " backslash \\ slash / </script>', "lines\nand\ttabs\r", "æøå ü 漢字 \U0001f600 \u2028",
                "{\"not\": [\"json\"]}", "'single' %s :limit $1"]


def test_the_lists_postgresql_writes_are_the_json_python_would_write(server: LiveServer) -> None:
    """/msgs, /msgs/<u> and /fllws/<u> come as JSON written by PostgreSQL (sql/messages.sql):
    the same values as orjson writes from the rows, pub_date to the second in UTC."""
    import orjson

    api_register(server, "w\u00e9ird \"name\"")
    api_register(server, "other")
    for text in TRICKY_TEXTS:
        assert tweet(server, "w\u00e9ird \"name\"", text).status_code == 204
    sql(server.database_url, "UPDATE messages SET pub_date = pub_date + interval '0.987654 seconds'")
    rows = sql(server.database_url, "SELECT m.text, m.pub_date, u.username FROM messages m JOIN users u "
               "ON u.user_id = m.author_id ORDER BY m.pub_date DESC, m.message_id DESC")
    expected = orjson.loads(orjson.dumps([{"content": t, "pub_date": d, "user": u} for t, d, u in rows],
                                         option=orjson.OPT_OMIT_MICROSECONDS))
    assert server.get("/msgs", headers=HEADERS).json() == expected
    assert server.get("/msgs/w%C3%A9ird%20%22name%22", headers=HEADERS).json() == expected
    assert server.get("/msgs/other", headers=HEADERS).json() == []
    assert follow(server, "other", {"follow": "w\u00e9ird \"name\""}).status_code == 204
    assert server.get("/fllws/other", headers=HEADERS).json() == {"follows": ["w\u00e9ird \"name\""]}
    assert server.get("/fllws/w%C3%A9ird%20%22name%22", headers=HEADERS).json() == {"follows": []}
    for path in ("/msgs", "/msgs/other", "/fllws/other"):
        assert server.get(path, headers=HEADERS).headers["content-type"] == "application/json"


def test_messages_are_newest_first_and_limited(server: LiveServer) -> None:
    api_register(server, "u")
    for number in range(5):
        tweet(server, "u", f"message {number}")
    texts = [m["content"] for m in server.get("/msgs", headers=HEADERS, params={"no": 3}).json()]
    assert texts == ["message 4", "message 3", "message 2"]
    assert len(server.get("/msgs", headers=HEADERS).json()) == 5
    assert server.get("/msgs", headers=HEADERS, params={"no": "junk"}).status_code == 200
    assert server.get("/msgs", headers=HEADERS, params={"no": -5}).json() == []


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("GET", "/msgs", None),
        ("GET", "/msgs/a", None),
        ("POST", "/msgs/a", {"content": "x"}),
        ("GET", "/fllws/a", None),
        ("POST", "/fllws/a", {"follow": "b"}),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Basic d3Jvbmc6d3Jvbmc=", "Bearer x", "Basic !!!"])
def test_credential_is_required(server: LiveServer, method: str, path: str, body, authorization) -> None:
    api_register(server, "a")
    headers = {"Content-Type": "application/json"} | ({"Authorization": authorization} if authorization else {})
    response = getattr(server, method.lower())(path, headers=headers, data=json.dumps(body) if body else None,
                                               params={"latest": 77})
    assert response.status_code == 403
    assert response.json() == NOT_AUTHORIZED
    assert latest(server) == 77  # recorded even though the request was refused
    assert sql(server.database_url, "SELECT count(*) FROM messages")[0][0] == 0
    assert sql(server.database_url, "SELECT count(*) FROM follows")[0][0] == 0


def test_register_errors_use_the_form_texts(server: LiveServer) -> None:
    assert api_register(server, "a").status_code == 204
    cases = [
        ({"username": "a"}, "The username is already taken"),
        ({"username": ""}, "You have to enter a username"),
        ({"username": "x", "email": ""}, "You have to enter a valid email address"),
        ({"username": "x", "email": "no-at-sign"}, "You have to enter a valid email address"),
        ({"username": "x", "pwd": ""}, "You have to enter a password"),
    ]
    for fields, text in cases:
        response = api_register(server, **({"username": "x"} | fields))  # type: ignore[arg-type]
        assert response.status_code == 400, fields
        assert response.json() == {"status": 400, "error_msg": text}
    assert sql(server.database_url, "SELECT count(*) FROM users")[0][0] == 1


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[1, 2]", b"null", b'"text"', b"{", b'{"username": 5, "email": [], "pwd": {}}',
     b"\xff\xfe", b'{"username": null}'],
)
def test_register_rejects_malformed_bodies(server: LiveServer, body: bytes) -> None:
    response = server.post("/register", data=body, headers=HEADERS, params={"latest": 3})
    assert response.status_code == 400
    assert response.json()["status"] == 400 and response.json()["error_msg"]
    assert latest(server) == 3
    assert sql(server.database_url, "SELECT count(*) FROM users")[0][0] == 0


@pytest.mark.parametrize(
    "body", [b"", b"oops", b"[]", b"{}", b'{"content": ""}', b'{"content": 42}', b'{"content": null}',
             b'{"content": "   "}', b'{"content": "a\\u0000b"}']
)
def test_tweet_rejects_bad_content(server: LiveServer, body: bytes) -> None:
    api_register(server, "a")
    response = server.post("/msgs/a", data=body, headers=HEADERS)
    assert response.status_code == 400 and response.json()["error_msg"]
    assert sql(server.database_url, "SELECT count(*) FROM messages")[0][0] == 0


def test_tweet_for_unknown_user_is_404(server: LiveServer) -> None:
    response = tweet(server, "ghost", "boo")
    assert response.status_code == 404 and response.json()["status"] == 404
    assert server.get("/msgs/ghost", headers=HEADERS).status_code == 404
    assert server.get("/fllws/ghost", headers=HEADERS).status_code == 404


def test_oversized_body_is_413_and_writes_nothing(server: LiveServer) -> None:
    api_register(server, "a")
    response = tweet(server, "a", "x" * 100_000)
    assert response.status_code == 413 and response.json()["error_msg"]
    long_message = tweet(server, "a", "x" * 1001)
    assert long_message.status_code == 400
    assert sql(server.database_url, "SELECT count(*) FROM messages")[0][0] == 0


def test_follow_edge_cases(server: LiveServer) -> None:
    for name in ("a", "b"):
        api_register(server, name)
    assert follow(server, "a", {"follow": "b"}).status_code == 204
    assert follow(server, "a", {"follow": "b"}).status_code == 204  # twice: no change, no error
    assert follow(server, "a", {"unfollow": "b"}).status_code == 204
    assert follow(server, "a", {"unfollow": "b"}).status_code == 204  # not followed: still 204
    assert follow(server, "a", {"follow": "a"}).status_code == 400
    assert follow(server, "a", {"follow": "ghost"}).status_code == 404
    assert follow(server, "ghost", {"follow": "a"}).status_code == 404
    assert follow(server, "a", {"unfollow": "ghost"}).status_code == 404
    for body in ({}, {"something": "b"}, {"follow": ""}, {"follow": 3}, {"unfollow": None}):
        response = follow(server, "a", body)
        assert response.status_code == 400 and response.json()["error_msg"], body
    assert server.post("/fllws/a", data=b"][", headers=HEADERS).status_code == 400
    assert sql(server.database_url, "SELECT count(*) FROM follows")[0][0] == 0


def test_follows_list_is_limited(server: LiveServer) -> None:
    for name in ("a", "b", "c", "d"):
        api_register(server, name)
    for name in ("b", "c", "d"):
        follow(server, "a", {"follow": name})
    assert server.get("/fllws/a", headers=HEADERS, params={"no": 2}).json() == {"follows": ["b", "c"]}


def test_malformed_latest_is_ignored(server: LiveServer) -> None:
    api_register(server, "a", latest=5)
    for value in ("abc", "", "1.5", str(2**70)):
        assert server.get("/msgs", headers=HEADERS, params={"latest": value}).status_code == 200
    assert latest(server) == 5


def test_flagged_messages_never_appear(server: LiveServer) -> None:
    api_register(server, "a")
    tweet(server, "a", "visible")
    tweet(server, "a", "moderated")
    sql(server.database_url, "UPDATE messages SET flagged = true WHERE text = 'moderated'")
    for path in ("/msgs", "/msgs/a"):
        assert [m["content"] for m in server.get(path, headers=HEADERS).json()] == ["visible"]
    assert "moderated" not in server.get("/public").text
    assert "moderated" not in server.get("/a").text


def test_unknown_api_paths_answer_json_404(server: LiveServer) -> None:
    response = server.get("/msgs/a/b", headers=HEADERS)
    assert response.status_code == 404 and response.json()["status"] == 404
    assert server.post("/latest").status_code == 405
    response = server.get("/fllws/a/b", headers=HEADERS)
    assert response.status_code == 404 and response.json()["status"] == 404
    response = requests.delete(server.url + "/msgs", headers=HEADERS, timeout=10)
    assert response.status_code == 405 and response.json()["status"] == 405


def test_a_user_page_that_only_starts_like_an_api_path_is_a_web_page(server: LiveServer) -> None:
    """/msgsfoo, /latestnews, /fllws: the pages of users of those names (or a 404 page), in
    HTML with the session cookie, not the API's JSON."""
    for name in ("msgsfoo", "latestnews", "fllws"):
        response = server.get(f"/{name}")
        assert response.status_code == 404 and response.headers["content-type"].startswith("text/html"), name
    api_register(server, "latestnews")
    response = server.get("/latestnews")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
