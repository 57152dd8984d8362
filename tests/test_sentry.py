"""Sentry: a failing request reaches an in-memory transport with its route and request id and
without the password, cookie or Authorization value it carried. No network."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import pytest
import sentry_sdk
from fixtures import SIMULATOR_AUTH, make_settings
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from minitwit import accounts
from minitwit.observability.sentry import setup_sentry

FAKE_DSN = "https://public-key@sentry.invalid/42"
SENTRY = {"sentry_dsn": FAKE_DSN, "sentry_environment": "ci", "sentry_release": "minitwit@test-1"}
PASSWORD = "correct-horse-battery-staple-4410"
COOKIE = "session-cookie-that-must-not-leave-6620"
BEARER = "authorization-that-must-not-leave-1984"


class RecordingTransport(Transport):
    """Keeps envelopes in memory instead of sending them."""

    def __init__(self) -> None:
        super().__init__()
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def events(self) -> list[dict]:
        return [item.payload.json for e in self.envelopes for item in e.items if item.type == "event"]

    def wait_for_events(self, count: int, timeout: float = 5.0) -> list[dict]:
        """The report is sent just after the error page: give it a moment."""
        deadline = time.monotonic() + timeout
        while len(self.events()) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.events()

    def everything_sent(self) -> bytes:
        return b"".join(envelope.serialize() for envelope in self.envelopes)


@pytest.fixture
def transport() -> Iterator[RecordingTransport]:
    recording = RecordingTransport()
    assert setup_sentry(make_settings(**SENTRY), transport=recording)
    yield recording
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)  # off again, as in a process without a DSN


def failing(*args: object) -> None:
    raise RuntimeError("deliberate failure in a test")


async def failing_async(*args: object) -> None:
    failing(*args)


def assert_nothing_secret(transport: RecordingTransport) -> None:
    sent = transport.everything_sent()
    for secret in (PASSWORD, COOKIE, BEARER):
        assert secret.encode() not in sent, secret


def test_a_failing_page_reaches_sentry_with_route_and_request_id_and_no_secrets(
    server_factory, transport: RecordingTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = server_factory(**SENTRY)
    monkeypatch.setattr(accounts, "register", failing_async)  # its frame holds the password
    response = server.post(
        "/register",
        data={"username": "ann", "email": "ann@example.org", "password": PASSWORD, "password2": PASSWORD},
        headers={"Cookie": f"minitwit_session={COOKIE}", "Authorization": f"Bearer {BEARER}"},
    )
    request_id = response.headers["x-request-id"]
    assert response.status_code == 500 and request_id in response.text  # the user's plain page

    events = transport.wait_for_events(1)
    assert len(events) == 1
    event = events[0]
    assert event["tags"]["route"] == "/register" and event["tags"]["request_id"] == request_id
    assert event["environment"] == "ci" and event["release"] == "minitwit@test-1"
    assert event["transaction"] == "POST /register"
    assert event["request"] == {"method": "POST", "url": "/register"}
    assert event["exception"]["values"][-1]["mechanism"]["type"] != "logging"  # reported once, by the app
    exception = event["exception"]["values"][-1]
    assert exception["type"] == "RuntimeError" and exception["value"] == "deliberate failure in a test"
    assert exception["stacktrace"]["frames"]  # the stack trace is there ...
    assert all("vars" not in frame for frame in exception["stacktrace"]["frames"])  # ... without locals
    assert_nothing_secret(transport)


def test_a_failing_api_call_reaches_sentry_and_answers_json_with_the_request_id(
    server_factory, transport: RecordingTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = server_factory(**SENTRY)
    monkeypatch.setattr(accounts, "register", failing_async)
    body = {"username": "ann", "email": "ann@example.org", "pwd": PASSWORD}
    response = server.post("/register", data=json.dumps(body), headers={
        "Authorization": SIMULATOR_AUTH, "Content-Type": "application/json", "Cookie": f"minitwit_session={COOKIE}"})
    request_id = response.headers["x-request-id"]
    assert response.status_code == 500
    assert response.json() == {"status": 500, "error_msg": "Internal server error: the failure was logged",
                               "request_id": request_id}

    events = transport.wait_for_events(1)
    assert len(events) == 1 and events[0]["tags"]["request_id"] == request_id
    assert events[0]["tags"]["route"] == "/register"
    assert_nothing_secret(transport)


def test_handled_errors_are_not_reported(server_factory, transport: RecordingTransport) -> None:
    server = server_factory(**SENTRY)
    assert server.get("/no/such/page").status_code == 404
    wrong = {"Authorization": "Basic " + base64.b64encode(b"x:y").decode()}
    assert server.get("/msgs", headers=wrong).status_code == 403
    assert server.get("/latest").status_code == 200
    time.sleep(0.2)
    assert transport.events() == []


def test_sentry_stays_off_without_a_dsn() -> None:
    assert setup_sentry(make_settings()) is False
    assert not sentry_sdk.get_client().is_active()


def test_sentry_sends_no_personal_data(transport: RecordingTransport) -> None:
    client = sentry_sdk.get_client()
    assert client.is_active() and not client.should_send_default_pii()
    assert client.options["include_local_variables"] is False
