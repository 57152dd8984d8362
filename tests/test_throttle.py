"""Sign-in and sign-up throttling, counted in PostgreSQL (minitwit.throttle)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from fixtures import LiveServer, ThreadedServer, make_settings, sql
from security_helpers import API_HEADERS, api_register, sign_in, sign_in_from, sign_up

from minitwit import throttle
from minitwit.app import create_app
from minitwit.settings import Settings, ThrottleLimits

LIMITS = ThrottleLimits(login_free_failures_per_user=3, login_free_failures_per_address=8, signups_per_address=3)
USER_REFUSAL = "Too many failed sign-in attempts for this username; try again in"


@pytest.fixture
def throttled(database_url: str) -> Iterator[LiveServer]:
    """A live server with small limits (3 free failures per user and address, 8 per address, 3 sign-ups)."""
    with ThreadedServer(create_app(make_settings(throttle=LIMITS), database_url)) as url:
        yield LiveServer(url, database_url)


def pass_the_wait(server: LiveServer) -> None:
    """As if the last failure were long enough ago for any wait (not for the forgetting)."""
    sql(server.database_url, "UPDATE login_throttle SET last_failure = now() - interval '10 minutes'")


def lengthen_the_wait(server: LiveServer, scope: str) -> None:
    """Four more failures on the books: the wait is 16 s, not 1 s, so that a test on a loaded
    machine cannot reach the end of the wait by being slow."""
    sql(server.database_url, "UPDATE login_throttle SET failures = failures + 4 WHERE scope = %s", scope)


def test_defaults_and_environment() -> None:
    assert Settings.from_env({}).throttle == ThrottleLimits(5, 100, 300, 86400, 20, 3600)
    env = {"THROTTLE_LOGIN_FREE_FAILURES_PER_USER": "7", "THROTTLE_SIGNUP_WINDOW_SECONDS": "60"}
    limits = Settings.from_env(env).throttle
    assert limits.login_free_failures_per_user == 7 and limits.signup_window_seconds == 60


@pytest.mark.parametrize(
    "host, key",
    [("203.0.113.7", "203.0.113.7"), ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
     ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"), ("::ffff:203.0.113.7", "203.0.113.7"),
     ("testclient", "testclient"), (None, "unknown"), ("", "unknown")],
)
def test_address_keys(host: str | None, key: str) -> None:
    assert throttle.address_key(host) == key


def test_failures_for_a_user_slow_down_that_address_with_growing_waits(throttled: LiveServer) -> None:
    sign_up(throttled, "alice")
    for _ in range(LIMITS.login_free_failures_per_user):
        assert "Invalid password" in sign_in(throttled, "alice", "wrong")[0].text
    lengthen_the_wait(throttled, "login-user")  # 1 s, 2 s, 4 s, 8 s: from 16 s on, the clock cannot win
    waits = []
    for name in ("alice", "ALICE", "alice"):  # one count, whatever the case
        refused, _ = sign_in(throttled, "alice")  # even the right password waits here
        assert refused.status_code == 429 and USER_REFUSAL in refused.text
        waits.append(int(refused.headers["Retry-After"]))
        pass_the_wait(throttled)
        assert "Invalid" in sign_in(throttled, name, "wrong")[0].text
    assert 8 < waits[0] <= 16 < waits[1] <= 32 < waits[2] <= 64, waits  # doubling with each failure
    pass_the_wait(throttled)
    right_password, _ = sign_in(throttled, "alice")
    assert "You were logged in" in right_password.text
    assert sql(throttled.database_url, "SELECT count(*) FROM login_throttle WHERE scope = 'login-user'") == [(0,)]


def test_the_owner_signs_in_from_another_address_at_once(throttled: LiveServer) -> None:
    """Acceptance: 15 failed sign-ins for a user from address A; the owner, from B, at once."""
    sign_up(throttled, "victim")
    statuses = {sign_in_from(throttled, "127.0.0.2", "victim", "guess").status_code for _ in range(15)}
    assert 429 in statuses  # A is being slowed down
    owner = sign_in_from(throttled, "127.0.0.3", "victim")
    assert owner.status_code == 200 and "You were logged in" in owner.text


def test_failures_from_one_address_slow_that_address_only(throttled: LiveServer) -> None:
    sign_up(throttled, "alice")
    for number in range(LIMITS.login_free_failures_per_address):
        assert "Invalid username" in sign_in_from(throttled, "127.0.0.2", f"nobody{number}", "x").text
    lengthen_the_wait(throttled, "login-address")
    refused = sign_in_from(throttled, "127.0.0.2", "alice")
    assert refused.status_code == 429 and "Too many failed sign-in attempts from your network" in refused.text
    assert "You were logged in" in sign_in_from(throttled, "127.0.0.3", "alice").text


def test_impossible_usernames_count_for_the_address_only(throttled: LiveServer) -> None:
    for name in ("x" * 65, "a\x00b", ""):
        assert "Invalid username" in sign_in(throttled, name, "x")[0].text
    assert sql(throttled.database_url, "SELECT scope, failures FROM login_throttle") == [("login-address", 3)]


def test_parallel_guesses_cannot_share_one_opening(throttled: LiveServer) -> None:
    sign_up(throttled, "alice")
    for _ in range(LIMITS.login_free_failures_per_user):
        sign_in(throttled, "alice", "wrong")
    lengthen_the_wait(throttled, "login-user")
    pass_the_wait(throttled)
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: sign_in(throttled, "alice", "wrong")[0], range(8)))
    assert sum("Invalid password" in r.text for r in responses) == 1
    assert sum(r.status_code == 429 for r in responses) == 7


def test_a_quiet_day_forgets_the_failures(throttled: LiveServer) -> None:
    sign_up(throttled, "alice")
    for _ in range(LIMITS.login_free_failures_per_user):
        sign_in(throttled, "alice", "wrong")
    lengthen_the_wait(throttled, "login-user")
    assert sign_in(throttled, "alice")[0].status_code == 429
    sql(throttled.database_url, "UPDATE login_throttle SET last_failure = now() - interval '25 hours'")
    assert "You were logged in" in sign_in(throttled, "alice")[0].text


def test_sign_up_flood_from_one_address_is_refused(throttled: LiveServer) -> None:
    assert "The two passwords do not match" in sign_up(throttled, "x", password2="other").text  # not counted
    for number in range(LIMITS.signups_per_address):
        assert "You were successfully registered" in sign_up(throttled, f"user{number}").text
    refused = sign_up(throttled, "one-too-many")
    assert refused.status_code == 429
    assert "Too many sign-ups from your network; try again in 60 minutes" in refused.text
    assert 'value="one-too-many"' in refused.text  # the form keeps what was typed
    assert sql(throttled.database_url, "SELECT count(*) FROM users")[0][0] == LIMITS.signups_per_address


def test_anonymous_api_sign_ups_are_throttled_the_simulator_is_not(server: LiveServer) -> None:
    """Acceptance, with the default limits: 300 anonymous JSON sign-ups from one address are
    refused well before the end; 30 with the simulator's credential from there all pass."""
    headers = {"Content-Type": "application/json"}
    statuses = []
    for number in range(300):
        body = json.dumps({"username": f"anon{number}", "email": f"anon{number}@example.com", "pwd": "secret"})
        statuses.append(server.post("/register", data=body, headers=headers).status_code)
    first_refusal = statuses.index(429)
    assert first_refusal <= 50 and set(statuses[first_refusal:]) == {429}
    refused = server.post("/register", data=json.dumps({"username": "late", "email": "l@x.org", "pwd": "x"}),
                          headers=headers)
    assert refused.json()["status"] == 429 and int(refused.headers["Retry-After"]) > 0
    assert all(api_register(server, f"sim{number}").status_code == 204 for number in range(30))
    assert server.post("/register", data=json.dumps({"username": "x"}), headers=API_HEADERS).status_code == 400


def test_the_simulator_api_is_exempt(throttled: LiveServer) -> None:
    for number in range(2 * LIMITS.signups_per_address):
        assert api_register(throttled, f"sim{number}").status_code == 204
    assert sql(throttled.database_url, "SELECT count(*) FROM throttle")[0][0] == 0


def test_old_rows_are_pruned(throttled: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    sql(throttled.database_url, "INSERT INTO login_throttle (scope, key, failures, last_failure) "
                                "VALUES ('login-user', 'old', 9, now() - interval '2 days')")
    monkeypatch.setattr(throttle, "PRUNE_EVERY", 1)
    sign_in(throttled, "guest", "x")
    keys = {row[0] for row in sql(throttled.database_url, "SELECT key FROM login_throttle")}
    assert "old" not in keys and any(key.endswith(" guest") for key in keys)


def test_limits_hold_across_server_processes(database_url: str, server_process_factory) -> None:
    """Two `minitwit serve` processes on one database share the counts."""
    env = {"THROTTLE_LOGIN_FREE_FAILURES_PER_USER": "4", "MINITWIT_WORKERS": "1"}
    _, first = server_process_factory(database_url, env=env)
    _, second = server_process_factory(database_url, env=env)
    form = {"username": "alice", "email": "a@example.com", "password": "secret", "password2": "secret"}
    assert "You were successfully registered" in requests.post(first + "/register", data=form, timeout=10).text
    for url in (first, second, first, second):
        response = requests.post(url + "/login", data={"username": "alice", "password": "wrong"}, timeout=10)
        assert "Invalid password" in response.text
    sql(database_url, "UPDATE login_throttle SET failures = failures + 4 WHERE scope = 'login-user'")  # 16 s
    for url in (first, second):
        response = requests.post(url + "/login", data={"username": "alice", "password": "secret"}, timeout=10)
        assert response.status_code == 429 and "Too many failed sign-in attempts" in response.text
