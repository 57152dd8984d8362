"""Input limits at their boundaries, through the web form, the API and the database itself."""

from __future__ import annotations

import asyncio
import json
import socket

import psycopg
import pytest
import requests
from fixtures import LiveServer, sql
from loguru import logger
from security_helpers import (
    API_HEADERS,
    api_register,
    api_tweet,
    sign_in,
    sign_up,
    signed_in,
)

from minitwit import migrations
from minitwit.accounts import RESERVED_USERNAMES
from minitwit.requests_util import MAX_BODY_BYTES, MAX_JSON_DEPTH, BodyTooLarge, json_depth_exceeds
from minitwit.security import RequestGuard
from minitwit.validation import (
    MAX_EMAIL_LENGTH,
    MAX_MESSAGE_LENGTH,
    MAX_PASSWORD_LENGTH,
    MAX_USERNAME_LENGTH,
)

USERNAME_TOO_LONG = f"The username may have at most {MAX_USERNAME_LENGTH} characters"
NOT_PRINTABLE = "The username may not contain control characters, slashes or surrounding spaces"
BAD_EMAIL = "You have to enter a valid email address"
PASSWORD_TOO_LONG = f"The password may have at most {MAX_PASSWORD_LENGTH} characters"
MESSAGE_TOO_LONG = f"A message may have at most {MAX_MESSAGE_LENGTH} characters"
RESERVED = "This username is reserved, please choose another"


def email_of_length(length: int) -> str:
    return "a" * (length - len("@example.com")) + "@example.com"


def usernames(server: LiveServer) -> set[str]:
    return {row[0] for row in sql(server.database_url, "SELECT username FROM users")}


# --- sign-up fields, both ways in -------------------------------------------------------------

SIGN_UP_CASES = [
    # (fields, error or None when accepted)
    ({"username": "u" * MAX_USERNAME_LENGTH}, None),
    ({"username": "u" * (MAX_USERNAME_LENGTH + 1)}, USERNAME_TOO_LONG),
    ({"email": email_of_length(MAX_EMAIL_LENGTH)}, None),
    ({"email": email_of_length(MAX_EMAIL_LENGTH + 1)}, BAD_EMAIL),
    ({"password": "p" * MAX_PASSWORD_LENGTH}, None),
    ({"password": "p" * (MAX_PASSWORD_LENGTH + 1)}, PASSWORD_TOO_LONG),
    ({"username": "tab\there"}, NOT_PRINTABLE),
    ({"username": "bell\x07"}, NOT_PRINTABLE),
    ({"username": "del\x7f"}, NOT_PRINTABLE),
    ({"username": "zero\u200bwidth"}, NOT_PRINTABLE),  # format characters hide in plain sight
    ({"username": "a/b"}, NOT_PRINTABLE),
    ({"username": " padded"}, NOT_PRINTABLE),
    ({"username": "Roger Histand"}, None),  # the scenario's names have spaces
    ({"username": "Ünïcödé ✓"}, None),
    ({"email": "a@b\x00c"}, BAD_EMAIL),
]


def sign_up_fields(case: dict[str, str]) -> dict[str, str]:
    username = case.get("username", "someone")
    password = case.get("password", "secret")
    return {"username": username, "email": case.get("email", "someone@example.com"), "password": password}


@pytest.mark.parametrize("case, error", SIGN_UP_CASES)
def test_sign_up_limits_in_the_web_form(server: LiveServer, case: dict[str, str], error: str | None) -> None:
    fields = sign_up_fields(case)
    response = sign_up(server, fields["username"], fields["password"], email=fields["email"])
    if error is None:
        assert "You were successfully registered" in response.text
        assert usernames(server) == {fields["username"]}
    else:
        assert error in response.text and usernames(server) == set()


@pytest.mark.parametrize("case, error", SIGN_UP_CASES)
def test_sign_up_limits_in_the_api(server: LiveServer, case: dict[str, str], error: str | None) -> None:
    fields = sign_up_fields(case)
    response = api_register(server, fields["username"], email=fields["email"], pwd=fields["password"])
    if error is None:
        assert response.status_code == 204 and usernames(server) == {fields["username"]}
    else:
        assert response.status_code == 400 and response.json() == {"status": 400, "error_msg": error}
        assert usernames(server) == set()


@pytest.mark.parametrize("name", sorted(RESERVED_USERNAMES | {"Public", "LOGIN", "Metrics"}))
def test_route_names_are_reserved(server: LiveServer, name: str) -> None:
    assert RESERVED in sign_up(server, name).text
    response = api_register(server, name)
    assert response.status_code == 400 and response.json()["error_msg"] == RESERVED
    assert usernames(server) == set()


def test_the_reserved_names_cover_every_route() -> None:
    assert {"public", "login", "logout", "register", "add_message", "static", "metrics", "health",
            "ready", "latest", "msgs", "fllws", "openapi.json"} <= RESERVED_USERNAMES


# --- messages ---------------------------------------------------------------------------------

MESSAGE_CASES = [
    ("m" * MAX_MESSAGE_LENGTH, None),
    ("m" * (MAX_MESSAGE_LENGTH + 1), MESSAGE_TOO_LONG),
    ("line one\nline two\ttabbed\r\n", None),
    ("bell\x07", "A message may not contain control characters"),
    ("escape\x1b[31m", "A message may not contain control characters"),
    ("emoji 👩‍💻 with a joiner", None),
    ("   ", "You have to enter a message"),
]


@pytest.mark.parametrize("text, error", MESSAGE_CASES)
def test_message_limits_in_the_web_form(server: LiveServer, text: str, error: str | None) -> None:
    session = signed_in(server, "alice")
    response = session.post(server.url + "/add_message", data={"text": text}, timeout=10)
    stored = [row[0] for row in sql(server.database_url, "SELECT text FROM messages")]
    if error is None:
        assert "Your message was recorded" in response.text and stored == [text]
    else:
        assert error in response.text and stored == []


@pytest.mark.parametrize("text, error", MESSAGE_CASES)
def test_message_limits_in_the_api(server: LiveServer, text: str, error: str | None) -> None:
    api_register(server, "alice")
    response = api_tweet(server, "alice", text)
    stored = [row[0] for row in sql(server.database_url, "SELECT text FROM messages")]
    if error is None:
        assert response.status_code == 204 and stored == [text]
    else:
        assert response.status_code == 400 and response.json()["error_msg"] == error and stored == []


# --- the database refuses what the app would never send ----------------------------------------

@pytest.mark.parametrize(
    "statement, params",
    [
        ("INSERT INTO users (username, email, pw_hash) VALUES (%s, 'a@b.c', 'h')", ("u" * 65,)),
        ("INSERT INTO users (username, email, pw_hash) VALUES (%s, 'a@b.c', 'h')", ("",)),
        ("INSERT INTO users (username, email, pw_hash) VALUES ('u', %s, 'h')", (email_of_length(255),)),
        ("INSERT INTO users (username, email, pw_hash) VALUES ('u', %s, 'h')", ("no-at-sign",)),
        ("INSERT INTO users (username, email, pw_hash) VALUES ('u', 'a@b.c', %s)", ("",)),
        ("INSERT INTO messages (author_id, text) SELECT user_id, %s FROM users", ("m" * 1001,)),
        ("INSERT INTO messages (author_id, text) SELECT user_id, %s FROM users", ("",)),
    ],
)
def test_the_database_enforces_the_limits(database_url: str, statement: str, params: tuple) -> None:
    sql(database_url, "INSERT INTO users (username, email, pw_hash) VALUES ('author', 'a@b.c', 'h')")
    with pytest.raises(psycopg.errors.CheckViolation):
        sql(database_url, statement, *params)


def test_the_database_takes_the_limits_themselves(database_url: str) -> None:
    sql(database_url, "INSERT INTO users (username, email, pw_hash) VALUES (%s, %s, 'h')",
        "u" * 64, email_of_length(254))
    sql(database_url, "INSERT INTO messages (author_id, text) SELECT user_id, %s FROM users", "m" * 1000)
    with psycopg.connect(migrations.libpq_url(database_url)) as connection, pytest.raises(psycopg.DataError):
        connection.execute("INSERT INTO messages (author_id, text) SELECT user_id, %s FROM users", ("a\x00b",))


# --- hostile names and text never reach the database as errors ---------------------------------

def test_impossible_names_are_unknown_users_not_errors(server: LiveServer) -> None:
    api_register(server, "alice")
    for path in ("/msgs/a%00b", "/fllws/a%00b", "/msgs/" + "x" * 300, "/msgs/%E2%80%8B"):
        response = server.get(path, headers=API_HEADERS)
        assert response.status_code == 404 and response.json()["status"] == 404, path
    assert server.post("/msgs/a%00b", data=json.dumps({"content": "x"}), headers=API_HEADERS).status_code == 404
    for body in ({"follow": "a\x00b"}, {"unfollow": "\u200b"}, {"follow": "x" * 100}):
        assert server.post("/fllws/alice", data=json.dumps(body), headers=API_HEADERS).status_code == 404
    assert server.get("/a%00b").status_code == 404
    assert server.get("/a%00b/follow").status_code in (401, 404)
    assert "Invalid username" in sign_in(server, "a\x00b", "x")[0].text


@pytest.mark.parametrize("field", ["username", "email", "pwd"])
def test_lone_surrogates_in_json_are_refused(server: LiveServer, field: str) -> None:
    body = {"username": "alice", "email": "a@example.com", "pwd": "secret"}
    raw = json.dumps(body).replace(json.dumps(body[field]), '"x\\ud800"')
    response = server.post("/register", data=raw, headers=API_HEADERS)
    assert response.status_code == 400 and response.json()["status"] == 400
    api_register(server, "bob")
    tweet = server.post("/msgs/bob", data='{"content": "x\\udfff"}', headers=API_HEADERS)
    assert tweet.status_code == 400


# --- the body cap, on every route --------------------------------------------------------------

def padded_json(size: int) -> bytes:
    """A JSON message body of exactly ``size`` bytes (its content far over the message limit)."""
    body = json.dumps({"content": ""}).encode()
    return json.dumps({"content": "x" * (size - len(body))}).encode()


def padded_form(size: int) -> bytes:
    return b"text=" + b"x" * (size - len(b"text="))


def test_body_cap_boundary_in_the_api(server: LiveServer) -> None:
    api_register(server, "alice")
    at_cap = server.post("/msgs/alice", data=padded_json(MAX_BODY_BYTES), headers=API_HEADERS)
    assert at_cap.status_code == 400 and at_cap.json()["error_msg"] == MESSAGE_TOO_LONG
    over = server.post("/msgs/alice", data=padded_json(MAX_BODY_BYTES + 1), headers=API_HEADERS)
    assert over.status_code == 413 and over.json()["status"] == 413
    over_register = server.post("/register", data=b" " * (MAX_BODY_BYTES + 1), headers=API_HEADERS)
    assert over_register.status_code == 413 and over_register.json()["status"] == 413


def test_body_cap_boundary_in_the_web_form(server: LiveServer) -> None:
    session = signed_in(server, "alice")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    at_cap = session.post(server.url + "/add_message", data=padded_form(MAX_BODY_BYTES), headers=form, timeout=10)
    assert at_cap.status_code == 200 and MESSAGE_TOO_LONG in at_cap.text
    over = session.post(server.url + "/add_message", data=padded_form(MAX_BODY_BYTES + 1), headers=form,
                        timeout=10)
    assert over.status_code == 413 and "The request body may have at most 65536 bytes" in over.text
    assert sql(server.database_url, "SELECT count(*) FROM messages")[0][0] == 0


@pytest.mark.parametrize("method, path", [("GET", "/public"), ("POST", "/logout"), ("GET", "/latest"),
                                          ("POST", "/login"), ("GET", "/static/style.css")])
def test_body_cap_holds_on_routes_that_never_read_a_body(server: LiveServer, method: str, path: str) -> None:
    response = requests.request(method, server.url + path, data=b"x" * (MAX_BODY_BYTES + 1), timeout=10)
    assert response.status_code == 413


def test_streamed_bodies_are_counted(server: LiveServer) -> None:
    api_register(server, "alice")

    def chunks(total: int):
        for _ in range(total // 16_384):
            yield b" " * 16_384

    streamed = server.post("/msgs/alice", data=chunks(5 * 16_384), headers=API_HEADERS)  # chunked: no length
    assert streamed.status_code == 413 and streamed.json()["status"] == 413
    small = server.post("/msgs/alice", data=iter([b'{"content": ', b'"streamed"}']), headers=API_HEADERS)
    assert small.status_code == 204


def test_the_guard_counts_what_streams_past_it() -> None:
    """RequestGuard itself, on an app that reads everything it is sent without any cap of its own."""
    async def reader(scope, receive, send) -> None:
        while (await receive()).get("more_body"):
            pass

    async def run(chunk_sizes: list[int]) -> None:
        messages = [{"type": "http.request", "body": b"x" * size, "more_body": True} for size in chunk_sizes]
        messages.append({"type": "http.request", "body": b"", "more_body": False})

        async def receive():
            return messages.pop(0)

        scope = {"type": "http", "method": "POST", "path": "/", "headers": []}
        await RequestGuard(reader, refuse=lambda *_: None)(scope, receive, None)  # type: ignore[arg-type]

    asyncio.run(run([MAX_BODY_BYTES // 2, MAX_BODY_BYTES // 2]))
    with pytest.raises(BodyTooLarge):
        asyncio.run(run([MAX_BODY_BYTES // 2, MAX_BODY_BYTES // 2, 1]))


@pytest.mark.parametrize("path", ["/register", "/msgs/alice", "/fllws/alice"])
@pytest.mark.parametrize("opening, closing", [("[", "]"), ('{"a":', "}")])
def test_deeply_nested_json_is_a_400_not_a_crash(server: LiveServer, path: str, opening: str, closing: str) -> None:
    """Acceptance: 2,000 levels of nesting (4 KB) to each API write is refused before any
    recursive parsing, with the API's error body and no ERROR log line."""
    errors: list[str] = []
    sink = logger.add(errors.append, level="ERROR")
    try:
        assert api_register(server, "alice").status_code == 204
        response = server.post(path, data=opening * 2000 + closing * 2000, headers=API_HEADERS)
    finally:
        logger.remove(sink)
    assert response.status_code == 400
    assert response.json() == {"status": 400, "error_msg": f"The request body may nest at most {MAX_JSON_DEPTH} levels"}
    assert errors == []


def test_nesting_is_counted_outside_strings_only() -> None:
    assert not json_depth_exceeds(b'{"content": "' + b"[" * 5000 + b'"}')
    assert not json_depth_exceeds(b'{"content": "\\"' + b"[" * 5000 + b'"}')  # an escaped quote
    assert json_depth_exceeds(b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1))
    assert not json_depth_exceeds(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH)
    assert not json_depth_exceeds(b"[[]]" * 1000)  # wide is fine, only deep is refused


def test_a_body_that_stops_coming_is_answered_408_and_the_next_request_is_served(server_factory) -> None:
    """The body's time limit (BODY_TIMEOUT_SECONDS, one deadline watch per worker): a request
    whose body stops half-way is answered 408 with Connection: close, on the API and on a web
    form, and the requests after it (on the same worker) are served as usual."""
    server = server_factory(body_timeout_seconds=0.5)
    port = int(server.url.rsplit(":", 1)[1])
    for path, kind in (("/msgs/nobody", "application/json"), ("/login", "application/x-www-form-urlencoded")):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {kind}\r\n"
                         "Content-Length: 100\r\n\r\n{".encode())
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b"connection: close" in answer.lower()
    assert api_register(server, "after").status_code == 204
    assert api_tweet(server, "after", "the body came at once").status_code == 204
