"""Cross-site request protection without tokens (minitwit.security.RequestGuard)."""

from __future__ import annotations

import json

import pytest
from fixtures import LiveServer, sql
from security_helpers import API_HEADERS, CROSS_SITE, api_register, signed_in

from minitwit.security import CROSS_ORIGIN_REFUSED, is_cross_origin, is_state_changing


@pytest.mark.parametrize(
    "sec_fetch_site, origin, host, refused",
    [
        (None, None, b"minitwit.example", False),  # curl, the simulator, the course's tests
        (b"same-origin", None, b"minitwit.example", False),
        (b"none", None, b"minitwit.example", False),  # typed into the address bar
        (b"cross-site", None, b"minitwit.example", True),
        (b"same-site", None, b"minitwit.example", True),  # a sibling subdomain is another origin
        (b"same-origin", b"https://evil.example", b"minitwit.example", False),  # Fetch Metadata wins
        (None, b"https://minitwit.example", b"minitwit.example", False),
        (None, b"http://127.0.0.1:5000", b"127.0.0.1:5000", False),
        (None, b"https://evil.example", b"minitwit.example", True),
        (None, b"https://minitwit.example:8443", b"minitwit.example", True),  # another port
        (None, b"null", b"minitwit.example", True),  # sandboxed frames, file: pages
        (None, b"https://minitwit.example", None, True),
    ],
)
def test_cross_origin_rule(sec_fetch_site, origin, host, refused) -> None:
    assert is_cross_origin(sec_fetch_site, origin, host) is refused


@pytest.mark.parametrize(
    "method, path, changes",
    [
        ("POST", "/add_message", True), ("POST", "/login", True), ("PUT", "/public", True),
        ("DELETE", "/x", True), ("PATCH", "/x", True),
        ("GET", "/alice/follow", True), ("GET", "/alice/unfollow", True), ("GET", "/logout", True),
        ("HEAD", "/alice/follow", True),  # Starlette answers HEAD with the GET handler
        ("GET", "/public", False), ("GET", "/alice", False), ("GET", "/", False), ("HEAD", "/public", False),
        ("OPTIONS", "/alice/follow", False), ("GET", "/msgs/alice", False),
    ],
)
def test_state_changing_requests(method: str, path: str, changes: bool) -> None:
    assert is_state_changing(method, path) is changes


def follow_count(server: LiveServer) -> int:
    return int(sql(server.database_url, "SELECT count(*) FROM follows")[0][0])


def test_cross_site_form_post_is_refused(server: LiveServer) -> None:
    session = signed_in(server, "alice")
    response = session.post(server.url + "/add_message", data={"text": "forged"}, headers=CROSS_SITE,
                            allow_redirects=False, timeout=10)
    assert response.status_code == 403
    assert CROSS_ORIGIN_REFUSED in response.text and response.headers["content-type"].startswith("text/html")
    only_origin = session.post(server.url + "/add_message", data={"text": "forged"},
                               headers={"Origin": "https://evil.example"}, allow_redirects=False, timeout=10)
    assert only_origin.status_code == 403
    assert sql(server.database_url, "SELECT count(*) FROM messages")[0][0] == 0


def test_cross_site_get_follow_and_unfollow_are_refused(server: LiveServer) -> None:
    signed_in(server, "bob")
    session = signed_in(server, "alice")
    for path in ("/bob/follow", "/bob/unfollow"):
        for method in ("GET", "HEAD", "POST"):
            response = session.request(method, server.url + path, headers=CROSS_SITE, allow_redirects=False,
                                       timeout=10)
            assert response.status_code == 403, (method, path)
    same_site = session.get(server.url + "/bob/follow", headers={"Sec-Fetch-Site": "same-site"},
                            allow_redirects=False, timeout=10)
    assert same_site.status_code == 403
    assert follow_count(server) == 0


def test_cross_site_logout_is_refused(server: LiveServer) -> None:
    session = signed_in(server, "alice")
    assert session.get(server.url + "/logout", headers=CROSS_SITE, timeout=10).status_code == 403
    assert session.post(server.url + "/logout", headers=CROSS_SITE, timeout=10).status_code == 403
    assert "sign out [alice]" in session.get(server.url + "/public", timeout=10).text


def test_cross_site_login_and_sign_up_are_refused(server: LiveServer) -> None:
    signed_in(server, "alice")
    refused_login = server.post("/login", data={"username": "alice", "password": "secret"}, headers=CROSS_SITE)
    assert refused_login.status_code == 403 and "sign out" not in refused_login.text
    refused_sign_up = server.post("/register", headers=CROSS_SITE, data={
        "username": "mallory", "email": "m@example.com", "password": "x", "password2": "x"})
    assert refused_sign_up.status_code == 403
    assert sql(server.database_url, "SELECT username FROM users") == [("alice",)]


def test_same_origin_browser_requests_pass(server: LiveServer) -> None:
    signed_in(server, "bob")
    session = signed_in(server, "alice")
    same_origin = {"Sec-Fetch-Site": "same-origin", "Origin": server.url}
    response = session.post(server.url + "/bob/follow", headers=same_origin, timeout=10)
    assert response.status_code == 200 and "You are now following &#34;bob&#34;" in response.text
    typed_url = session.get(server.url + "/bob/unfollow", headers={"Sec-Fetch-Site": "none"}, timeout=10)
    assert "You are no longer following &#34;bob&#34;" in typed_url.text
    old_browser = session.post(server.url + "/add_message", data={"text": "hi"}, headers={"Origin": server.url},
                               timeout=10)
    assert "Your message was recorded" in old_browser.text


def test_non_browser_clients_pass(server: LiveServer) -> None:
    """The course's clients send no Fetch Metadata and no Origin: the legacy GET links still work."""
    signed_in(server, "bob")
    session = signed_in(server, "alice")
    assert "You are now following &#34;bob&#34;" in session.get(server.url + "/bob/follow", timeout=10).text
    assert follow_count(server) == 1
    assert "You are no longer following &#34;bob&#34;" in session.get(server.url + "/bob/unfollow", timeout=10).text
    assert "You were logged out" in session.get(server.url + "/logout", timeout=10).text


def test_cross_site_reads_pass(server: LiveServer) -> None:
    signed_in(server, "alice")
    for path in ("/public", "/alice", "/login", "/static/style.css"):
        assert server.get(path, headers=CROSS_SITE).status_code == 200, path


def test_cross_site_api_writes_are_refused_as_json(server: LiveServer) -> None:
    assert api_register(server, "alice").status_code == 204
    response = server.post("/msgs/alice", data=json.dumps({"content": "forged"}), headers=API_HEADERS | CROSS_SITE)
    assert response.status_code == 403
    assert response.json() == {"status": 403, "error_msg": CROSS_ORIGIN_REFUSED}
    register = server.post("/register", headers=API_HEADERS | CROSS_SITE,
                           data=json.dumps({"username": "m", "email": "m@x.y", "pwd": "x"}))
    assert register.status_code == 403 and register.json()["status"] == 403
    assert sql(server.database_url, "SELECT count(*) FROM messages")[0][0] == 0
