"""Allowed hosts (MINITWIT_ALLOWED_HOSTS) and redirects that never reflect the Host header."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fixtures import LiveServer, ThreadedServer, make_settings

from minitwit.app import create_app
from minitwit.security import UNKNOWN_HOST, host_allowed

SITE = "minitwit.example.org"


@pytest.fixture
def guarded(database_url: str) -> Iterator[LiveServer]:
    app = create_app(make_settings(allowed_hosts=(SITE, "*.minitwit.example.org")), database_url)
    with ThreadedServer(app) as url:
        yield LiveServer(url, database_url)


@pytest.mark.parametrize(
    "host, allowed",
    [(b"minitwit.example.org", True), (b"MINITWIT.example.org:443", True), (b"www.minitwit.example.org", True),
     (b"evil.example", False), (b"minitwit.example.org.evil.example", False), (b"[::1]:5000", False), (None, False)],
)
def test_host_names(host: bytes | None, allowed: bool) -> None:
    assert host_allowed(host, frozenset({SITE, "*.minitwit.example.org"})) is allowed


def test_other_hosts_are_refused(guarded: LiveServer) -> None:
    refused = guarded.get("/public", headers={"Host": "evil.example"})
    assert refused.status_code == 400 and UNKNOWN_HOST in refused.text
    api = guarded.get("/latest", headers={"Host": "evil.example"})
    assert api.status_code == 400 and api.json()["error_msg"] == UNKNOWN_HOST
    assert guarded.get("/public", headers={"Host": SITE}).status_code == 200


def test_probes_answer_whatever_the_host(guarded: LiveServer) -> None:
    for path in ("/health", "/ready", "/metrics"):
        assert guarded.get(path, headers={"Host": "app:5000"}).status_code == 200, path


def test_redirects_and_links_are_relative(server: LiveServer) -> None:
    """Any host is accepted outside production, but none is ever reflected into a link."""
    response = server.get("/", headers={"Host": "evil.example"}, allow_redirects=False)
    assert response.status_code == 302 and response.headers["location"] == "/public"
    page = server.get("/public", headers={"Host": "evil.example"}).text
    assert "evil.example" not in page
