"""Security headers on every HTML response, and the session cookie's flags."""

from __future__ import annotations

import pytest
import requests
from fixtures import LiveServer, ThreadedServer, make_settings, sql
from security_helpers import API_HEADERS, CROSS_SITE, api_register, api_tweet, signed_in

from minitwit.app import create_app
from minitwit.security import CONTENT_SECURITY_POLICY


def assert_html_headers(response: requests.Response) -> None:
    assert response.headers["content-type"].startswith("text/html"), response.url
    csp = response.headers["content-security-policy"]
    assert csp == CONTENT_SECURITY_POLICY
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert directives["script-src"] == "'none'" and "'unsafe-inline'" not in csp
    assert "https://www.gravatar.com" in directives["img-src"]
    assert directives["frame-ancestors"] == "'none'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["x-frame-options"] == "DENY"


def test_every_html_page_carries_the_headers(server: LiveServer) -> None:
    session = signed_in(server, "alice")
    api_tweet(server, "alice", "hello")
    pages = [session.get(server.url + path, timeout=10) for path in ("/", "/public", "/alice", "/alice?before=1")]
    pages += [server.get(path) for path in ("/public", "/login", "/register", "/alice", "/nobody", "/x/y/z")]
    pages.append(server.post("/add_message", data={"text": "signed out"}))  # 401 page
    pages.append(server.post("/login", data={"username": "alice", "password": "wrong"}))  # form with error
    pages.append(server.post("/add_message", headers=CROSS_SITE, data={"text": "x"}))  # 403 refusal
    pages.append(server.post("/add_message", data=b"x" * 70_000,
                             headers={"Content-Type": "application/x-www-form-urlencoded"}))  # 413
    statuses = {page.status_code for page in pages}
    assert {200, 401, 403, 404, 413} <= statuses
    for page in pages:
        assert_html_headers(page)


def test_server_error_pages_carry_the_headers(server: LiveServer) -> None:
    sql(server.database_url, "DROP TABLE messages CASCADE")
    response = server.get("/public")
    assert response.status_code == 500
    assert_html_headers(response)


def test_json_and_static_answers_are_nosniff_without_a_policy(server: LiveServer) -> None:
    api_register(server, "alice")
    for response in (server.get("/msgs", headers=API_HEADERS), server.get("/latest"),
                     server.get("/static/style.css"), server.get("/openapi.json")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "content-security-policy" not in response.headers


@pytest.mark.parametrize("environment, secure", [("development", False), ("production", True)])
def test_session_cookie_is_secure_in_production(database_url: str, environment: str, secure: bool) -> None:
    app = create_app(make_settings(environment=environment), database_url)
    with ThreadedServer(app) as url:
        requests.post(url + "/register", timeout=10, data={
            "username": "alice", "email": "a@example.com", "password": "p", "password2": "p"})
        response = requests.post(url + "/login", data={"username": "alice", "password": "p"},
                                 allow_redirects=False, timeout=10)
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("minitwit_session=")
    flags = {flag.strip().lower() for flag in cookie.split(";")[1:]}
    assert "httponly" in flags and "samesite=lax" in flags
    assert ("secure" in flags) is secure


def test_the_bench_variants_change_their_layer_and_nothing_else(server_factory) -> None:  # type: ignore[no-untyped-def]
    """`minitwit bench layers` measures the app with one layer changed: each switch really
    changes that layer (the shipped app has them all, as the tests above show)."""
    shipped = server_factory()
    no_security = server_factory(bench_variant="no-security")
    no_metrics = server_factory(bench_variant="no-metrics")
    assert shipped.get("/latest").headers["x-content-type-options"] == "nosniff"
    bare = no_security.get("/latest")
    assert bare.status_code == 200 and "x-content-type-options" not in bare.headers
    assert "x-request-id" in bare.headers
    for server in (shipped, no_metrics):
        server.get("/msgs", headers=API_HEADERS)
    counted = 'minitwit_http_requests_total{method="GET",route="/msgs",status="200"}'
    assert counted in shipped.get("/metrics").text
    assert counted not in no_metrics.get("/metrics").text
