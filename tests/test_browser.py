"""A real browser (Debian's Chromium driven by Playwright) through the whole user journey on a
real `minitwit serve`: sign up, sign in, post, follow, unfollow, sign out."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fixtures import sql

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
]

pytestmark = pytest.mark.browser


@pytest.fixture
def page(tmp_path: Path):
    if CHROMIUM is None:
        reason = "Chromium is not installed (apt-get install chromium; .ci/run does it)"
        print(f"\nSKIP browser test: {reason}")
        pytest.skip(reason)
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context()
        # Gravatar is on the internet, which this machine cannot reach: answer images locally.
        context.route("https://www.gravatar.com/**", lambda route: route.fulfill(status=204))
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        yield page
        context.close()
        browser.close()


def sign_up(page, base: str, username: str, password: str) -> None:
    page.goto(base + "/public")
    page.click("text=sign up")
    page.fill("#username", username)
    page.fill("#email", f"{username}@example.com")
    page.fill("#password", password)
    page.fill("#password2", password)
    page.click("input[type=submit]")
    page.wait_for_selector("text=You were successfully registered and can login now")


def sign_in(page, username: str, password: str) -> None:
    page.click("text=sign in")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("text=You were logged in")


def sign_out(page) -> None:
    page.click("button:has-text('sign out')")
    page.wait_for_selector("text=You were logged out")


def test_user_journey_in_a_real_browser(page, database_url: str, server_process_factory, tmp_path: Path) -> None:
    _, base = server_process_factory(database_url)

    sign_up(page, base, "alice", "alice-pw")
    sign_in(page, "alice", "alice-pw")
    page.fill("input[name=text]", "Hello from <alice>")
    page.click("input[value=Share]")
    page.wait_for_selector("text=Your message was recorded")
    assert page.locator("ul.messages li").first.inner_text().startswith("alice")
    assert "Hello from <alice>" in page.locator("ul.messages").inner_text()  # shown as text, escaped
    sign_out(page)

    sign_up(page, base, "bob", "bob-pw")
    sign_in(page, "bob", "bob-pw")
    assert "Hello from <alice>" not in page.locator("ul.messages").inner_text()
    page.click("text=public timeline")
    page.click("ul.messages >> text=alice")
    page.click("button:has-text('Follow user')")
    page.wait_for_selector('text=You are now following "alice"')
    assert page.locator(".followstatus").inner_text().startswith("You are currently following this user")
    page.click("text=my timeline")
    assert "Hello from <alice>" in page.locator("ul.messages").inner_text()
    assert sql(database_url, "SELECT count(*) FROM follows")[0][0] == 1

    page.goto(base + "/alice")
    page.click("button:has-text('Unfollow user')")
    page.wait_for_selector('text=You are no longer following "alice"')
    page.click("text=my timeline")
    assert "Hello from <alice>" not in page.locator("ul.messages").inner_text()
    page.screenshot(path=str(tmp_path / "timeline.png"))
    sign_out(page)
    assert page.url.endswith("/public")
    assert page.locator("text=sign in").count() == 1
    assert sql(database_url, "SELECT count(*) FROM follows")[0][0] == 0
