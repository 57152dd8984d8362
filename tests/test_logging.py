"""Logs: one JSON access line per request carrying the response's request id, errors with their
traceback, no secrets, and the same on the stdout of a real `minitwit serve` with workers."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator

import pytest
import requests
from fixtures import SIMULATOR_AUTH, LiveServer
from loguru import logger

from minitwit import accounts, simulator
from minitwit.observability.logs import JSON_FORMAT, configure_logging, json_sink
from minitwit.settings import ConfigError, Settings

HEADERS = {"Authorization": SIMULATOR_AUTH, "Content-Type": "application/json"}
GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")
PASSWORD = "correct-horse-battery-staple-7731"
COOKIE = "cookie-value-that-must-not-be-logged-5512"
BEARER = "authorization-value-that-must-not-be-logged-9087"


class Lines:
    """A stream that keeps what the JSON sink writes, parsed."""

    def __init__(self) -> None:
        self.records: list[dict] = []

    def write(self, text: str) -> None:
        self.records.append(json.loads(text))

    def flush(self) -> None:
        pass


@pytest.fixture
def log_records() -> Iterator[list[dict]]:
    """Every log record of this test, as the app's JSON sink writes it."""
    lines = Lines()
    sink = logger.add(json_sink(lines), format=JSON_FORMAT, level="DEBUG", backtrace=False, diagnose=False)
    yield lines.records
    logger.remove(sink)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """The access line is written just after the response is sent: give it a moment."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def access_lines(records: list[dict]) -> list[dict]:
    return [r["record"]["extra"] for r in records if r["record"]["message"] == "request"]


def assert_one_access_line_each(lines: list[dict], responses: dict[str, tuple[requests.Response, str]]) -> None:
    for request_id, (response, route) in responses.items():
        mine = [line for line in lines if line["request_id"] == request_id]
        assert len(mine) == 1, f"{request_id}: {len(mine)} access lines"
        line = mine[0]
        assert line["status"] == response.status_code
        assert line["route"] == route and line["method"] == response.request.method
        assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0


def send_requests(base: str) -> dict[str, tuple[requests.Response, str]]:
    """A mix of outcomes, some carrying a password, a cookie and an Authorization header;
    returns {request id: (response, expected route)}."""
    secret_headers = {"Cookie": f"minitwit_session={COOKIE}", "Authorization": f"Bearer {BEARER}"}
    sent = [
        (requests.get(base + "/latest", timeout=10), "/latest"),
        (requests.post(base + "/register", data=json.dumps({"username": "ann", "email": "a@x.org", "pwd": PASSWORD}),
                       headers=HEADERS, timeout=10), "/register"),
        (requests.post(base + "/login", data={"username": "ann", "password": PASSWORD}, headers=secret_headers,
                       allow_redirects=False, timeout=10), "/login"),
        (requests.get(base + "/msgs", headers={"Authorization": f"Basic {BEARER}"}, timeout=10), "/msgs"),
        (requests.get(base + "/no/such/page", headers=secret_headers, timeout=10), "<unmatched>"),
        (requests.put(base + "/latest", timeout=10), "<unmatched>"),
        (requests.get(base + "/ann", timeout=10), "/{username}"),
    ]
    statuses = [response.status_code for response, _ in sent]
    assert statuses == [200, 204, 302, 403, 404, 405, 200]
    return {response.headers["x-request-id"]: (response, route) for response, route in sent}


def test_every_request_writes_one_access_line_with_its_request_id(server: LiveServer, log_records: list[dict]) -> None:
    responses = send_requests(server.url)
    assert all(GENERATED_ID.match(request_id) for request_id in responses)
    wait_for(lambda: len(access_lines(log_records)) >= len(responses), "the access lines")
    lines = access_lines(log_records)
    assert len(lines) == len(responses)
    assert_one_access_line_each(lines, responses)
    everything = json.dumps(log_records)
    assert PASSWORD not in everything and COOKIE not in everything and BEARER not in everything


def test_an_incoming_request_id_is_kept_only_when_it_is_safe(server: LiveServer, log_records: list[dict]) -> None:
    kept = server.get("/latest", headers={"X-Request-ID": "lb-4f2a.9:Z_01"})
    assert kept.headers["x-request-id"] == "lb-4f2a.9:Z_01"
    for unsafe in ("two words", "x" * 129, "<script>", "id\\n", "ünï"):
        replaced = server.get("/latest", headers={"X-Request-ID": unsafe.encode()})
        assert GENERATED_ID.match(replaced.headers["x-request-id"]), unsafe
    wait_for(lambda: len(access_lines(log_records)) == 6, "the access lines")
    assert access_lines(log_records)[0]["request_id"] == "lb-4f2a.9:Z_01"


def test_an_unhandled_error_is_logged_once_with_traceback_and_request_id(
    server: LiveServer, log_records: list[dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing(db: object, username: str, text: str, latest: int | None) -> int:
        raise RuntimeError("deliberate failure in a test")

    assert server.post("/register", data=json.dumps({"username": "ann", "email": "a@x.org", "pwd": "p"}),
                       headers=HEADERS).status_code == 204
    monkeypatch.setattr(simulator, "post_message", failing)
    response = server.post("/msgs/ann", data=json.dumps({"content": "hi"}), headers=HEADERS)
    request_id = response.headers["x-request-id"]
    assert response.status_code == 500
    assert response.json()["request_id"] == request_id  # the API shows it to the caller
    wait_for(lambda: any(line["request_id"] == request_id for line in access_lines(log_records)), "the access line")

    errors = [r for r in log_records if r["record"]["level"]["name"] == "ERROR"]
    assert len(errors) == 1
    error = errors[0]
    assert error["record"]["extra"]["request_id"] == request_id
    assert error["record"]["extra"]["route"] == "/msgs/{username}"
    assert error["record"]["exception"]["type"] == "RuntimeError"
    assert "Traceback" in error["text"] and "RuntimeError: deliberate failure in a test" in error["text"]
    access = [line for line in access_lines(log_records) if line["request_id"] == request_id]
    assert len(access) == 1 and access[0]["status"] == 500


def test_the_error_page_shows_the_request_id(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch, log_records: list[dict]
) -> None:
    async def failing(*args: object) -> None:
        raise RuntimeError("deliberate failure in a test")

    monkeypatch.setattr(accounts, "register", failing)
    response = server.post("/register", data={"username": "x", "email": "x@x.org", "password": "a", "password2": "a"})
    assert response.status_code == 500 and response.headers["content-type"].startswith("text/html")
    assert f"<code>{response.headers['x-request-id']}</code>" in response.text
    assert "Traceback" not in response.text and "deliberate" not in response.text


def test_minitwit_serve_writes_json_lines_on_stdout(database_url: str, server_process_factory) -> None:
    """End to end, with two uvicorn worker processes: every line on stdout is a JSON object,
    uvicorn's own lines included, and each request has exactly one access line."""
    process, base = server_process_factory(database_url, workers=2, env={"LOG_LEVEL": "INFO", "LOG_FORMAT": "json"})
    responses = send_requests(base)
    time.sleep(0.5)  # the last access line follows its response
    process.terminate()
    output, _ = process.communicate(timeout=30)

    lines = [line for line in output.splitlines() if line.strip()]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line on stdout: {line!r}")
    messages = [r["record"]["message"] for r in records]
    assert any(m.startswith("Application startup complete") for m in messages)  # uvicorn, in a worker
    assert any(m.startswith("Uvicorn running on") for m in messages)  # uvicorn, in the supervisor
    assert not [m for m in messages if 'HTTP/1.1"' in m]  # no second access line from uvicorn
    assert_one_access_line_each(access_lines(records), responses)
    assert PASSWORD not in output and COOKIE not in output and BEARER not in output


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    logger.remove()
    logger.add(sys.stderr)  # loguru's default
    root.handlers[:] = handlers
    root.setLevel(level)


def test_text_format_for_a_terminal(restore_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "text")
    logger.info("request", route="/msgs/{username}", status=200)
    logger.debug("below the level")
    logging.getLogger("uvicorn.error").info("a line from uvicorn")
    out = capsys.readouterr().out
    assert re.search(r"\| INFO +\| request \| route=/msgs/\{username\} status=200\n", out), out
    assert "a line from uvicorn" in out and "below the level" not in out
    assert not out.lstrip().startswith("{")


def test_log_settings_are_checked() -> None:
    assert Settings.from_env({}).log_format == "json"
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        Settings.from_env({"LOG_LEVEL": "verbose"})
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        Settings.from_env({"LOG_FORMAT": "xml"})


def test_the_direct_access_line_is_the_line_loguru_writes(restore_logging: None) -> None:
    """log_request writes the access line itself when the process logs JSON at INFO: the same
    line, field for field, as the JSON sink writes for ``logger.info("request", ...)``."""
    from minitwit.observability import logs

    lines = Lines()
    configure_logging("INFO", "json")
    logs._AccessLineTarget.stream = lines

    def access() -> None:
        logs.log_request(request_id="abc", method="GET", route="/msgs", path="/msgs", status=200, duration_ms=1.5)

    access()
    logger.remove()
    logger.add(json_sink(lines), format=JSON_FORMAT, level="INFO")
    logs._AccessLineTarget.stream = None
    access()
    direct, through_loguru = lines.records
    for line in (direct, through_loguru):
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d", line["record"]["time"]["repr"])
        del line["record"]["time"]
    assert direct == through_loguru


@pytest.mark.parametrize("microseconds", [1_796_173_257_531_560, 1_796_173_257_000_000, 1_796_173_259_999_999])
def test_the_direct_access_lines_time_is_the_one_loguru_writes(
        restore_logging: None, monkeypatch: pytest.MonkeyPatch, microseconds: int) -> None:
    """The direct access line formats the second once and the microseconds per line; its time
    reads as ``str(datetime)`` and ``datetime.timestamp()`` would write it (no fraction on a
    whole second, as loguru's)."""
    from datetime import datetime

    from minitwit.observability import logs

    lines = Lines()
    configure_logging("INFO", "json")
    logs._AccessLineTarget.stream = lines
    monkeypatch.setattr(logs, "time_ns", lambda: microseconds * 1000 + 999)
    logs.log_request(status=200)
    logs._AccessLineTarget.stream = None
    expected = datetime.fromtimestamp(microseconds / 1_000_000, logs._AccessLineTarget.timezone)
    assert lines.records[0]["record"]["time"] == {"repr": str(expected), "timestamp": expected.timestamp()}


class BufferedLines:
    """A stream like stdout: what is written waits in a buffer until flushed."""

    def __init__(self) -> None:
        self.buffer: list[str] = []
        self.out: list[dict] = []

    def write(self, text: str) -> None:
        self.buffer.append(text)

    def flush(self) -> None:
        self.out += [json.loads(line) for line in "".join(self.buffer).splitlines()]
        self.buffer.clear()


def test_access_lines_are_flushed_together_and_never_out_of_order(restore_logging: None) -> None:
    """In a server (an event loop) access lines are flushed together, soon after they are
    written; any other line flushes the stream at once, the access lines before it first."""
    from minitwit.observability import logs

    stream = BufferedLines()

    async def serve() -> None:
        configure_logging("INFO", "json")
        logger.remove()
        logger.add(json_sink(stream), format=JSON_FORMAT, level="INFO")
        logs._AccessLineTarget.stream = stream
        logs.log_request(number=1)
        logs.log_request(number=2)
        assert stream.out == []  # not one write each
        logger.warning("something else")
        logs.log_request(number=3)
        for _ in range(500):  # the flush is due within ACCESS_FLUSH_SECONDS; bounded wait
            if len(stream.out) == 4:
                break
            await asyncio.sleep(0.01)

    asyncio.run(serve())
    logs._AccessLineTarget.stream = None
    said = [line["record"]["extra"].get("number") or line["record"]["message"] for line in stream.out]
    assert said == [1, 2, "something else", 3]


UNBUFFERED_SERVER = """
import asyncio, sys
from loguru import logger
from minitwit.observability import logs
logs.configure_logging("INFO", "json")
stream = logs._AccessLineTarget.stream
assert sys.stdout.write_through and stream is not sys.stdout and not stream.write_through, stream

async def serve():
    logs.log_request(number=1)
    logs.log_request(number=2)
    logger.warning("something else")
    logs.log_request(number=3)
    await asyncio.sleep(0.2)
    logs.log_request(number=4)
    logs.flush_access_lines()  # what the app's shutdown does

asyncio.run(serve())
"""


def test_access_lines_stay_buffered_when_python_runs_unbuffered() -> None:
    """PYTHONUNBUFFERED=1 (the image sets it) makes sys.stdout write every line in a system call
    of its own; the log lines get a buffered stream on the same file all the same, every line
    arrives and in order."""
    import os
    import subprocess

    done = subprocess.run([sys.executable, "-c", UNBUFFERED_SERVER], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}, check=False)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    said = [line["record"]["extra"].get("number") or line["record"]["message"] for line in lines]
    assert said == [1, 2, "something else", 3, 4]
