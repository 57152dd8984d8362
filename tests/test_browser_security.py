"""A real Chromium: the UI works under the Content-Security-Policy, and another site's page cannot
make a signed-in browser post, follow or sign out (the cookie's SameSite=Lax alone lets the GET
links through; the cross-origin guard refuses them)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fixtures import LiveServer, sql

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
               "--disable-component-update", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium; .ci/run does it)"),
]


@pytest.fixture
def browser_page() -> Iterator:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


@pytest.fixture
def evil_site(server: LiveServer) -> Iterator[str]:
    """Another site (localhost, not 127.0.0.1) whose page targets MiniTwit's state-changing routes."""
    page = f"""<!doctype html><html><body>
      <form id="post" action="{server.url}/add_message" method="post">
        <input type="hidden" name="text" value="forged by another site"><button>win a prize</button></form>
      <a id="follow" href="{server.url}/mallory/follow">cute cats</a>
      <a id="logout" href="{server.url}/logout">more cats</a>
    </body></html>""".encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()


def sign_up_and_in(page, url: str, username: str) -> None:
    page.goto(url + "/register")
    page.fill("#username", username)
    page.fill("#email", f"{username}@example.com")
    page.fill("#password", "secret")
    page.fill("#password2", "secret")
    page.click("input[type=submit]")
    page.fill("#username", username)
    page.fill("#password", "secret")
    page.click("input[type=submit]")
    assert f"sign out [{username}]" in page.content()


def test_the_ui_works_under_the_policy(server: LiveServer, browser_page) -> None:
    page = browser_page
    violations: list[str] = []
    page.on("console", lambda message: "Content Security Policy" in message.text and violations.append(message.text))
    sign_up_and_in(page, server.url, "bob")
    page.click("button.link")  # sign out: a POST form styled as a link
    sign_up_and_in(page, server.url, "alice")
    page.fill("input[name=text]", "hello under a strict policy")
    page.click("input[value=Share]")
    assert "Your message was recorded" in page.content()
    page.goto(server.url + "/bob")
    page.click("button.follow")
    assert "You are now following &quot;bob&quot;" in page.content() or 'following "bob"' in page.inner_text("body")
    page.click("button.unfollow")
    assert "You are no longer following" in page.inner_text("body")
    page.click("button.link")
    assert "You were logged out" in page.inner_text("body")
    assert violations == []


def test_another_site_cannot_act_for_a_signed_in_user(server: LiveServer, browser_page, evil_site: str) -> None:
    page = browser_page
    sign_up_and_in(page, server.url, "mallory")
    page.click("button.link")
    sign_up_and_in(page, server.url, "alice")
    for selector in ("#post button", "#follow", "#logout"):
        page.goto(evil_site)
        with page.expect_navigation() as navigation:
            page.click(selector)
        assert navigation.value.status == 403, selector
    assert sql(server.database_url, "SELECT count(*) FROM messages")[0][0] == 0
    assert sql(server.database_url, "SELECT count(*) FROM follows")[0][0] == 0
    page.goto(server.url + "/public")
    assert "sign out [alice]" in page.content()  # still signed in
