"""Sign-in and sign-up throttling, counted in PostgreSQL (minitwit.throttle)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from fixtures import LiveServer, ThreadedServer, make_settings, sql
from security_helpers import api_register, sign_in, sign_up

from minitwit import throttle
from minitwit.app import create_app
from minitwit.settings import Settings, ThrottleLimits

LIMITS = ThrottleLimits(login_failures_per_user=3, login_failures_per_address=8, signups_per_address=3)
USER_REFUSAL = "Too many failed sign-in attempts for this username; try again in 15 minutes"


@pytest.fixture
def throttled(database_url: str) -> Iterator[LiveServer]:
    """A live server with small limits (3 failures per user, 8 per address, 3 sign-ups)."""
    with ThreadedServer(create_app(make_settings(throttle=LIMITS), database_url)) as url:
        yield LiveServer(url, database_url)


def test_defaults_and_environment() -> None:
    assert Settings.from_env({}).throttle == ThrottleLimits(10, 100, 900, 20, 3600)
    env = {"THROTTLE_LOGIN_FAILURES_PER_USER": "5", "THROTTLE_SIGNUP_WINDOW_SECONDS": "60"}
    limits = Settings.from_env(env).throttle
    assert limits.login_failures_per_user == 5 and limits.signup_window_seconds == 60


@pytest.mark.parametrize(
    "host, key",
    [("203.0.113.7", "203.0.113.7"), ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
     ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"), ("::ffff:203.0.113.7", "203.0.113.7"),
     ("testclient", "testclient"), (None, "unknown"), ("", "unknown")],
)
def test_address_keys(host: str | None, key: str) -> None:
    assert throttle.address_key(host) == key


def test_failures_for_one_user_are_refused_afterwards(throttled: LiveServer) -> None:
    sign_up(throttled, "alice")
    sign_up(throttled, "bob")
    for _ in range(LIMITS.login_failures_per_user):
        assert "Invalid password" in sign_in(throttled, "alice", "wrong")[0].text
    refused, _ = sign_in(throttled, "alice", "wrong")
    assert refused.status_code == 429 and USER_REFUSAL in refused.text
    assert 0 < int(refused.headers["retry-after"]) <= 900
    right_password, session = sign_in(throttled, "alice", "secret")
    assert right_password.status_code == 429, "a locked username must not reveal a right guess"
    assert "sign out" not in session.get(throttled.url + "/public", timeout=10).text
    assert "You were logged in" in sign_in(throttled, "bob")[0].text  # other users are not affected


def test_the_window_ends(throttled: LiveServer) -> None:
    sign_up(throttled, "alice")
    for _ in range(LIMITS.login_failures_per_user + 1):
        sign_in(throttled, "alice", "wrong")
    assert sign_in(throttled, "alice")[0].status_code == 429
    sql(throttled.database_url, "UPDATE throttle SET window_start = now() - interval '16 minutes'")
    assert "You were logged in" in sign_in(throttled, "alice")[0].text


def test_success_clears_the_user_count_and_is_never_counted(throttled: LiveServer) -> None:
    sign_up(throttled, "alice")
    for _ in range(3):
        for _ in range(LIMITS.login_failures_per_user - 1):
            assert "Invalid password" in sign_in(throttled, "alice", "wrong")[0].text
        assert "You were logged in" in sign_in(throttled, "alice")[0].text
    for _ in range(2 * LIMITS.login_failures_per_address):
        assert "You were logged in" in sign_in(throttled, "alice")[0].text
    rows = sql(throttled.database_url, "SELECT scope, hits FROM throttle WHERE scope LIKE 'login-%'")
    assert rows == [("login-address", 6)], "only the six failures stay counted, for the address"


def test_failures_from_one_address_are_refused_afterwards(throttled: LiveServer) -> None:
    sign_up(throttled, "alice")
    for number in range(LIMITS.login_failures_per_address):
        assert "Invalid username" in sign_in(throttled, f"nobody{number}", "x")[0].text
    refused, _ = sign_in(throttled, "alice")
    assert refused.status_code == 429
    assert "Too many failed sign-in attempts from your network" in refused.text


def test_impossible_usernames_count_for_the_address_only(throttled: LiveServer) -> None:
    for name in ("x" * 65, "a\x00b", ""):
        assert "Invalid username" in sign_in(throttled, name, "x")[0].text
    assert sql(throttled.database_url, "SELECT scope, hits FROM throttle") == [("login-address", 3)]


def test_parallel_guesses_cannot_slip_past_the_count(throttled: LiveServer) -> None:
    sign_up(throttled, "alice")
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: sign_in(throttled, "alice", "wrong")[0], range(12)))
    assert sum("Invalid password" in r.text for r in responses) == LIMITS.login_failures_per_user
    assert sum(r.status_code == 429 for r in responses) == 12 - LIMITS.login_failures_per_user


def test_sign_up_flood_from_one_address_is_refused(throttled: LiveServer) -> None:
    assert "The two passwords do not match" in sign_up(throttled, "x", password2="other").text  # not counted
    for number in range(LIMITS.signups_per_address):
        assert "You were successfully registered" in sign_up(throttled, f"user{number}").text
    refused = sign_up(throttled, "one-too-many")
    assert refused.status_code == 429
    assert "Too many sign-ups from your network; try again in 60 minutes" in refused.text
    assert 'value="one-too-many"' in refused.text  # the form keeps what was typed
    assert sql(throttled.database_url, "SELECT count(*) FROM users")[0][0] == LIMITS.signups_per_address


def test_the_simulator_api_is_exempt(throttled: LiveServer) -> None:
    for number in range(2 * LIMITS.signups_per_address):
        assert api_register(throttled, f"sim{number}").status_code == 204
    assert sql(throttled.database_url, "SELECT count(*) FROM throttle")[0][0] == 0


def test_old_windows_are_pruned(throttled: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    sql(throttled.database_url,
        "INSERT INTO throttle (scope, key, window_start, hits) VALUES ('login-user', 'old', now() - interval '2 days', 9)")
    monkeypatch.setattr(throttle, "PRUNE_EVERY", 1)
    sign_in(throttled, "someone", "x")
    keys = {row[0] for row in sql(throttled.database_url, "SELECT key FROM throttle")}
    assert "old" not in keys and "someone" in keys


def test_limits_hold_across_server_processes(database_url: str, server_process_factory) -> None:
    """Two `minitwit serve` processes on one database share the counts."""
    env = {"THROTTLE_LOGIN_FAILURES_PER_USER": "4", "MINITWIT_WORKERS": "1"}
    _, first = server_process_factory(database_url, env=env)
    _, second = server_process_factory(database_url, env=env)
    form = {"username": "alice", "email": "a@example.com", "password": "secret", "password2": "secret"}
    assert "You were successfully registered" in requests.post(first + "/register", data=form, timeout=10).text
    for url in (first, second, first, second):
        response = requests.post(url + "/login", data={"username": "alice", "password": "wrong"}, timeout=10)
        assert "Invalid password" in response.text
    for url in (first, second):
        response = requests.post(url + "/login", data={"username": "alice", "password": "secret"}, timeout=10)
        assert response.status_code == 429 and "Too many failed sign-in attempts" in response.text
