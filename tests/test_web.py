"""The web UI over real HTTP (docs/api.md, "Web routes"), driven the way the course's UI tests drive it."""

from __future__ import annotations

import re

import requests
from fixtures import LiveServer, sql


def register(server: LiveServer, username: str, password: str, password2: str | None = None,
             email: str | None = None) -> requests.Response:
    return server.post("/register", data={
        "username": username, "password": password,
        "password2": password if password2 is None else password2,
        "email": f"{username}@example.com" if email is None else email,
    })


def login(server: LiveServer, username: str, password: str) -> tuple[requests.Response, requests.Session]:
    session = requests.Session()
    response = session.post(server.url + "/login", data={"username": username, "password": password}, timeout=10)
    return response, session


def register_and_login(server: LiveServer, username: str, password: str = "default"):
    register(server, username, password)
    return login(server, username, password)


def add_message(server: LiveServer, session: requests.Session, text: str) -> requests.Response:
    response = session.post(server.url + "/add_message", data={"text": text}, timeout=10)
    if text:
        assert "Your message was recorded" in response.text
    return response


def test_register(server: LiveServer) -> None:
    response = register(server, "user1", "default")
    assert "You were successfully registered and can login now" in response.text
    assert response.url.endswith("/login")
    assert "The username is already taken" in register(server, "user1", "default").text
    assert "You have to enter a username" in register(server, "", "default").text
    assert "You have to enter a password" in register(server, "meh", "").text
    assert "The two passwords do not match" in register(server, "meh", "x", "y").text
    assert "You have to enter a valid email address" in register(server, "meh", "foo", email="broken").text
    assert "You have to enter a valid email address" in register(server, "meh", "foo", email="").text
    assert sql(server.database_url, "SELECT username FROM users") == [("user1",)]


def test_login_logout(server: LiveServer) -> None:
    response, session = register_and_login(server, "user1")
    assert "You were logged in" in response.text
    assert "sign out [user1]" in response.text
    response = session.get(server.url + "/logout", timeout=10)
    assert "You were logged out" in response.text
    assert response.url.endswith("/public")
    assert "sign in" in response.text
    assert "Invalid password" in login(server, "user1", "wrongpassword")[0].text
    assert "Invalid username" in login(server, "user2", "wrongpassword")[0].text


def test_logout_by_post(server: LiveServer) -> None:
    _, session = register_and_login(server, "user1")
    response = session.post(server.url + "/logout", timeout=10)
    assert "You were logged out" in response.text and "sign in" in response.text


def test_message_recording(server: LiveServer) -> None:
    _, session = register_and_login(server, "foo")
    add_message(server, session, "test message 1")
    add_message(server, session, "<test message 2>")
    response = server.get("/")
    assert response.url.endswith("/public")  # signed out: the public timeline
    assert "test message 1" in response.text
    assert "&lt;test message 2&gt;" in response.text
    assert "<test message 2>" not in response.text


def test_empty_message_is_not_recorded(server: LiveServer) -> None:
    _, session = register_and_login(server, "foo")
    response = add_message(server, session, "")
    assert "You have to enter a message" in response.text
    assert sql(server.database_url, "SELECT count(*) FROM messages")[0][0] == 0


def test_timelines(server: LiveServer) -> None:
    _, session = register_and_login(server, "foo")
    add_message(server, session, "the message by foo")
    session.get(server.url + "/logout", timeout=10)
    _, session = register_and_login(server, "bar")
    add_message(server, session, "the message by bar")
    response = session.get(server.url + "/public", timeout=10)
    assert "the message by foo" in response.text and "the message by bar" in response.text

    response = session.get(server.url + "/", timeout=10)
    assert "the message by foo" not in response.text and "the message by bar" in response.text

    response = session.get(server.url + "/foo/follow", timeout=10)
    assert "You are now following &#34;foo&#34;" in response.text
    assert response.url.endswith("/foo")
    response = session.get(server.url + "/", timeout=10)
    assert "the message by foo" in response.text and "the message by bar" in response.text

    response = session.get(server.url + "/bar", timeout=10)
    assert "the message by foo" not in response.text and "the message by bar" in response.text
    response = session.get(server.url + "/foo", timeout=10)
    assert "the message by foo" in response.text and "the message by bar" not in response.text
    assert "You are currently following this user" in response.text

    response = session.get(server.url + "/foo/unfollow", timeout=10)
    assert "You are no longer following &#34;foo&#34;" in response.text
    response = session.get(server.url + "/", timeout=10)
    assert "the message by foo" not in response.text and "the message by bar" in response.text


def test_follow_and_unfollow_by_post(server: LiveServer) -> None:
    register(server, "foo", "default")
    _, session = register_and_login(server, "bar")
    assert "You are now following &#34;foo&#34;" in session.post(server.url + "/foo/follow", timeout=10).text
    assert sql(server.database_url, "SELECT count(*) FROM follows")[0][0] == 1
    assert "You are no longer following" in session.post(server.url + "/foo/unfollow", timeout=10).text
    assert sql(server.database_url, "SELECT count(*) FROM follows")[0][0] == 0


def test_signed_out_writes_are_401(server: LiveServer) -> None:
    register(server, "foo", "default")
    for method, path in (("post", "/add_message"), ("get", "/foo/follow"), ("get", "/foo/unfollow"),
                         ("post", "/foo/follow")):
        response = getattr(requests, method)(server.url + path, data={"text": "x"}, timeout=10)
        assert response.status_code == 401, path
        assert "sign in" in response.text.lower()
    assert sql(server.database_url, "SELECT count(*) FROM messages")[0][0] == 0


def test_unknown_user_is_404(server: LiveServer) -> None:
    _, session = register_and_login(server, "bar")
    assert server.get("/nobody").status_code == 404
    assert session.get(server.url + "/nobody/follow", timeout=10).status_code == 404
    assert session.get(server.url + "/nobody/unfollow", timeout=10).status_code == 404


def test_cannot_follow_yourself(server: LiveServer) -> None:
    _, session = register_and_login(server, "bar")
    response = session.get(server.url + "/bar/follow", timeout=10)
    assert "You cannot follow yourself" in response.text
    assert sql(server.database_url, "SELECT count(*) FROM follows")[0][0] == 0


def test_usernames_with_spaces_and_symbols(server: LiveServer) -> None:
    name = "Roger Histand & <Co>"
    register(server, name, "pw")
    _, session = login(server, name, "pw")
    add_message(server, session, "hi")
    response = server.get("/" + requests.utils.quote(name))
    assert response.status_code == 200 and "Roger Histand &amp; &lt;Co&gt;" in response.text


def test_paging_shows_30_and_links_older(server: LiveServer) -> None:
    register(server, "foo", "default")
    for number in range(35):
        sql(server.database_url, "INSERT INTO messages (author_id, text) SELECT user_id, %s FROM users", f"m{number}")
    first = server.get("/public").text
    assert first.count("<li>") == 30 and "m34" in first and not re.search(r"\bm4\s", first)
    older = re.search(r'href="(\?before=\d+)"', first)
    assert older, "a link to older messages"
    second = server.get("/public" + older.group(1)).text
    assert re.search(r"\bm4\s", second) and re.search(r"\bm0\s", second) and "m34" not in second
    assert second.count("<li>") == 5 and "?before=" not in second


def test_message_shows_gravatar_link_and_date(server: LiveServer) -> None:
    _, session = register_and_login(server, "foo")
    add_message(server, session, "dated")
    page = server.get("/public").text
    assert "https://www.gravatar.com/avatar/" in page and "d=identicon" in page
    assert 'href="/foo"' in page  # relative: the Host header is never reflected
    assert re.search(r"\d{4}-\d{2}-\d{2} @ \d{2}:\d{2}", page)


def test_session_cookie_flags(server: LiveServer) -> None:
    response, _ = register_and_login(server, "foo")
    cookie = response.history[0].headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie


def test_signed_in_user_is_redirected_from_login_and_register(server: LiveServer) -> None:
    _, session = register_and_login(server, "foo")
    assert session.get(server.url + "/login", timeout=10).url == server.url + "/"
    assert session.get(server.url + "/register", timeout=10).url == server.url + "/"
