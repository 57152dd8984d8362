"""Which build answers: /health, the page footer, the X-MiniTwit-Version header on every
response and the minitwit_build_info metric all name the same version (an image's build args)."""

from __future__ import annotations

import pytest
from fixtures import LiveServer, ThreadedServer, make_settings
from test_metrics import scrape, value

from minitwit import __version__
from minitwit.app import create_app
from minitwit.version import UNKNOWN_REVISION, BuildInfo, build_info


def test_outside_an_image_the_package_version_is_reported() -> None:
    assert build_info({}) == BuildInfo(__version__, UNKNOWN_REVISION)


def test_an_image_build_arg_wins_over_the_package_version() -> None:
    environ = {"MINITWIT_VERSION": "1.0.42", "MINITWIT_REVISION": "0123abcd"}
    assert build_info(environ) == BuildInfo("1.0.42", "0123abcd")


@pytest.mark.parametrize("bad", ["", "  ", "1.0\r\nX-Evil: 1", 'v"}', "x" * 65])
def test_a_value_unfit_for_a_header_or_label_is_not_used(bad: str) -> None:
    assert build_info({"MINITWIT_VERSION": bad, "MINITWIT_REVISION": bad}) == BuildInfo(__version__, UNKNOWN_REVISION)


@pytest.fixture
def released(database_url: str, monkeypatch: pytest.MonkeyPatch) -> LiveServer:
    """A server started as the image starts it: version and revision in the environment."""
    monkeypatch.setenv("MINITWIT_VERSION", "2.3.4")
    monkeypatch.setenv("MINITWIT_REVISION", "feedc0ffee12")
    with ThreadedServer(create_app(make_settings(metrics_token=""), database_url)) as url:
        yield LiveServer(url, database_url)


def test_health_names_the_version_and_revision(released: LiveServer) -> None:
    response = released.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": "2.3.4", "revision": "feedc0ffee12"}


@pytest.mark.parametrize("path", ["/public", "/health", "/latest", "/no-such-user/follow", "/static/style.css"])
def test_every_response_carries_the_version_header(released: LiveServer, path: str) -> None:
    assert released.get(path, allow_redirects=False).headers["X-MiniTwit-Version"] == "2.3.4"


def test_the_page_footer_shows_the_version(released: LiveServer) -> None:
    for path in ("/public", "/login", "/no-such-user"):  # the error page has the footer too
        page = released.get(path).text
        assert "version 2.3.4" in page.split("<footer", 1)[1], path


def test_build_info_metric_labels_the_build(released: LiveServer) -> None:
    samples = scrape(released)
    assert value(samples, "minitwit_build_info", version="2.3.4", revision="feedc0ffee12") == 1
    assert [labels for name, labels, _ in samples if name == "minitwit_build_info"] == [
        {"version": "2.3.4", "revision": "feedc0ffee12"}]
