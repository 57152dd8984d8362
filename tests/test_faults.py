"""Faults inside the app (issue 11): the database goes away and comes back, is not there yet,
a statement waits behind a lock, and the server is told to stop under load.

Each test runs the real `minitwit serve` (or a real HTTP server) against a real PostgreSQL that
it stops and starts itself (tests/postgres_cluster.py). The time bounds are the issue's, kept
generous for a busy two-core machine: they test "answers within seconds, never hangs", not speed.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import requests
from cli_helpers import clean_environment, minitwit
from fixtures import (
    REPO_ROOT,
    SIMULATOR_AUTH,
    ThreadedServer,
    free_port,
    make_settings,
    sql,
    start_serve,
    stop_process,
    wait_until_up,
)
from postgres_cluster import PostgresCluster
from test_sentry import SENTRY, RecordingTransport, transport  # noqa: F401 - the fixture

from minitwit.app import create_app
from minitwit.bench import replay
from minitwit.db import APPLICATION_NAME, Database
from minitwit.errors import DatabaseUnavailable
from minitwit.settings import DatabaseLimits, Settings

API = {"Authorization": SIMULATOR_AUTH}
PROBE_TIMEOUT = 5.0  # the issue: every answer during an outage within 5 s
RECOVERY_TIMEOUT = 10.0  # the issue: serving normally again within 10 s of PostgreSQL's return


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    """One PostgreSQL for the module's tests, on 127.0.0.1; each test leaves it as it likes."""
    cluster = PostgresCluster().init()
    try:
        yield cluster
    finally:
        cluster.remove()


@dataclass
class Served:
    process: subprocess.Popen
    url: str
    log: Path

    def lines(self) -> list[dict]:
        """The server's JSON log lines (anything else it printed is kept as {"raw": ...})."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                found.append(json.loads(line))
            except ValueError:
                found.append({"raw": line})
        return found

    def wait_for_workers(self, workers: int, timeout: float = 60) -> None:
        """Until every worker has started (/health answers as soon as the first one has)."""
        deadline = time.monotonic() + timeout
        while self.log.read_text(errors="replace").count("Application startup complete") < workers:
            assert self.process.poll() is None and time.monotonic() < deadline, self.log.read_text()[-3000:]
            time.sleep(0.1)

    def access(self) -> dict[str, int]:
        """request id -> status, from the app's access lines."""
        return {
            line["record"]["extra"]["request_id"]: line["record"]["extra"]["status"]
            for line in self.lines()
            if line.get("record", {}).get("message") == "request"
        }


@contextmanager
def serving(database_url: str, folder: Path, *, workers: int = 2, wait: bool = True,
            **variables: str) -> Iterator[Served]:
    """`minitwit serve` as a subprocess with JSON logs at INFO (access lines) in a file."""
    port = free_port()
    log = folder / f"serve-{port}.log"
    environment = clean_environment(folder, DATABASE_URL=database_url, LOG_LEVEL="INFO", LOG_FORMAT="json",
                                    **variables)
    with open(log, "wb") as output:
        process = start_serve(port, workers, environment, output)
    served = Served(process, f"http://127.0.0.1:{port}", log)
    try:
        if wait:
            wait_until_up(served.url, process, timeout=90)
            served.wait_for_workers(workers)
        yield served
    finally:
        stop_process(process, grace=30)


def probe(method: str, url: str, **kwargs: object) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = requests.request(method, url, timeout=PROBE_TIMEOUT + 5, allow_redirects=False, **kwargs)  # type: ignore[arg-type]
    return response, time.monotonic() - started


def routes(user: str, text: str) -> list[tuple[str, str, dict]]:
    """(method, path, request options) of the probed routes: web pages, API reads and a write."""
    return [
        ("GET", "/public", {}),
        ("GET", "/", {}),
        ("GET", "/msgs", {"headers": API}),
        ("GET", "/latest", {}),
        ("POST", f"/msgs/{user}", {"headers": API, "json": {"content": text}}),
        ("GET", "/ready", {}),
    ]


def post_message(url: str, user: str, text: str) -> int:
    return requests.post(f"{url}/msgs/{user}", json={"content": text}, headers=API, timeout=10).status_code


def messages_of(url: str, user: str) -> list[str]:
    response = requests.get(f"{url}/msgs/{user}?no=1000", headers=API, timeout=10)
    assert response.status_code == 200
    return [message["content"] for message in response.json()]


def no_traceback(served: Served) -> None:
    text = served.log.read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]


def test_outage_answers_503_then_heals_without_restart(cluster: PostgresCluster, tmp_path: Path) -> None:
    cluster.start()
    url = cluster.create_database(f"outage_{uuid.uuid4().hex[:8]}")
    with serving(url, tmp_path, workers=2) as served:
        assert requests.post(served.url + "/register", json={"username": "alice", "email": "a@x.org", "pwd": "p"},
                             timeout=10).status_code == 204
        assert post_message(served.url, "alice", "acknowledged before the outage") == 204

        cluster.stop("immediate")
        deadline = time.monotonic() + 4  # several seconds of probing, both workers
        rounds = 0
        while time.monotonic() < deadline or rounds < 2:
            rounds += 1
            for method, path, options in routes("alice", f"during the outage {rounds}"):
                response, seconds = probe(method, served.url + path, **options)
                assert response.status_code == 503, (path, response.status_code, response.text[:300])
                assert seconds < PROBE_TIMEOUT, (path, seconds)
                assert response.headers.get("Retry-After"), path
                if path.startswith(("/msgs", "/latest")):
                    assert response.json()["status"] == 503 and response.json()["error_msg"]
                elif path == "/ready":
                    assert response.json()["status"] == "unavailable" and response.json()["reason"]
                else:
                    assert "text/html" in response.headers["content-type"] and "unavailable" in response.text
            health, seconds = probe("GET", served.url + "/health")
            assert health.status_code == 200 and seconds < PROBE_TIMEOUT

        cluster.start()
        restarted = time.monotonic()
        expected = {"/public": 200, "/": 302, "/msgs": 200, "/latest": 200, "/msgs/alice": 204, "/ready": 200}
        while True:
            statuses = {path: probe(method, served.url + path, **options)[0].status_code
                        for method, path, options in routes("alice", "after the outage")}
            if statuses == expected:
                break
            assert time.monotonic() - restarted < RECOVERY_TIMEOUT, statuses
            time.sleep(0.2)
        assert served.process.poll() is None  # the same process, never restarted

        for _ in range(4):  # both workers' pools serve again
            assert post_message(served.url, "alice", "posted after recovery") == 204
        contents = messages_of(served.url, "alice")
        assert "posted after recovery" in contents
        assert "acknowledged before the outage" in contents  # an acknowledged write survives
        assert not any(text.startswith("during the outage") for text in contents)  # a 503 wrote nothing
        metrics = requests.get(served.url + "/metrics", timeout=10).text
        assert 'minitwit_db_unavailable_total{reason="unreachable"}' in metrics

    statuses = set(served.access().values())
    assert 503 in statuses and 500 not in statuses
    no_traceback(served)


def test_serve_waits_for_a_database_server_that_is_not_up_yet(cluster: PostgresCluster, tmp_path: Path) -> None:
    cluster.start()
    name = f"late_{uuid.uuid4().hex[:8]}"
    cluster.create_database(name)  # as PostgreSQL's images do before they listen on TCP
    cluster.stop()
    started = time.monotonic()
    with serving(cluster.url(name), tmp_path, workers=1, wait=False) as served:
        while "waiting for PostgreSQL" not in served.log.read_text(errors="replace"):
            assert served.process.poll() is None and time.monotonic() - started < 60, served.log.read_text()
            time.sleep(0.2)
        time.sleep(max(0.0, 5 - (time.monotonic() - started)))
        cluster.start()
        wait_until_up(served.url, served.process, timeout=90)
        assert requests.get(served.url + "/ready", timeout=10).status_code == 200
        assert requests.get(served.url + "/public", timeout=10).status_code == 200
    waits = [line for line in served.lines()
             if str(line.get("record", {}).get("message", "")).startswith("waiting for PostgreSQL")]
    assert len(waits) >= 2
    assert all(f"127.0.0.1:{cluster.port}/{name}" in line["record"]["message"] for line in waits)
    no_traceback(served)


def test_a_command_gives_up_after_the_bound_with_one_clear_line(tmp_path: Path) -> None:
    nobody = f"postgresql://postgres@127.0.0.1:{free_port()}/minitwit"
    result = minitwit("migrate", data_dir=tmp_path, database_url=nobody, DB_CONNECT_TIMEOUT_SECONDS="3")
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("minitwit: gave up waiting for PostgreSQL at 127.0.0.1:"), result.stderr
    assert "DB_CONNECT_TIMEOUT_SECONDS=3" in last
    assert (result.stdout + result.stderr).count("waiting for PostgreSQL at 127.0.0.1:") >= 2


def test_a_statement_stuck_behind_a_lock_ends_in_503_and_frees_its_connection(
    database_url: str, transport: RecordingTransport  # noqa: F811 - the imported fixture
) -> None:
    limits = DatabaseLimits(statement_timeout_seconds=1.0)
    # One connection: the next request can only succeed if the stuck one gave it back.
    app = create_app(make_settings(db=limits, db_pool_size=1, **SENTRY), database_url)
    with ThreadedServer(app) as url:
        assert requests.post(url + "/register", json={"username": "bob", "email": "b@x.org", "pwd": "p"},
                             timeout=10).status_code == 204
        with psycopg.connect(database_url) as blocker:  # a transaction holds bob's row
            blocker.execute("SELECT 1 FROM users WHERE username = 'bob' FOR UPDATE")
            started = time.monotonic()
            response = requests.post(url + "/msgs/bob", json={"content": "blocked"}, headers=API, timeout=30)
            waited = time.monotonic() - started
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"] and response.json()["status"] == 503
            assert 0.9 <= waited < 20  # it waited for the statement timeout, then gave up
            assert requests.get(url + "/msgs", headers=API, timeout=10).status_code == 200  # connection is back
            blocker.rollback()
        assert post_message(url, "bob", "unblocked") == 204
        assert messages_of(url, "bob") == ["unblocked"]  # the 503 wrote nothing
        metrics = requests.get(url + "/metrics", timeout=10).text
        assert 'minitwit_db_unavailable_total{reason="statement_timeout"} 1' in metrics
    assert transport.events() == []  # an expected condition: counted, not reported as a bug


def test_the_pool_waits_a_bounded_time_for_a_connection(database_url: str) -> None:
    limits = DatabaseLimits(statement_timeout_seconds=10.0, acquire_timeout_seconds=0.5)
    app = create_app(make_settings(db=limits, db_pool_size=1), database_url)
    with ThreadedServer(app) as url:
        assert requests.post(url + "/register", json={"username": "eve", "email": "e@x.org", "pwd": "p"},
                             timeout=10).status_code == 204
        with psycopg.connect(database_url) as blocker:
            blocker.execute("SELECT 1 FROM users WHERE username = 'eve' FOR UPDATE")
            stuck = threading.Thread(target=post_message, args=(url, "eve", "waits for the lock"))
            stuck.start()  # holds the only connection while it waits
            time.sleep(0.5)
            response, seconds = probe("GET", url + "/public")
            assert response.status_code == 503 and response.headers["Retry-After"]
            assert seconds < PROBE_TIMEOUT
            blocker.rollback()
        stuck.join(20)
        metrics = requests.get(url + "/metrics", timeout=10).text
        assert 'minitwit_db_unavailable_total{reason="pool_timeout"} 1' in metrics


def test_a_connection_the_server_closes_between_two_statements_is_unavailable(database_url: str) -> None:
    """PostgreSQL gone between two statements of one request (its task killed while a sign-up
    hashes the password): asyncpg then raises InterfaceError ("connection is closed") for the
    next statement or transaction, which must be a 503 (DatabaseUnavailable), not a 500."""

    async def outcomes() -> list[str]:
        database = Database(database_url, pool_size=1)
        await database.connect()
        reasons = []
        try:
            for next_step in ("statement", "transaction"):
                try:
                    async with database.session() as db:
                        await db.fetch_value("get_latest")
                        sql(database_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                          "WHERE application_name = %s AND datname = current_database()",
                            APPLICATION_NAME)
                        await asyncio.sleep(0.5)  # asyncpg reads the server's goodbye
                        if next_step == "statement":
                            await db.fetch_value("get_latest")
                        else:
                            async with db.transaction():
                                pass
                except DatabaseUnavailable as error:
                    reasons.append(f"{next_step}: {error.reason}")
            async with database.session() as db:  # the pool opens a new connection by itself
                reasons.append(f"afterwards: {await db.fetch_value('get_latest')}")
        finally:
            await database.disconnect()
        return reasons

    assert asyncio.run(outcomes()) == ["statement: unreachable", "transaction: unreachable", "afterwards: -1"]


# --- Graceful stop -----------------------------------------------------------------------------

CLIENTS = 8
PER_CLIENT = 300  # requests a client sends at most; it stops early once the server is gone


def client_actions(client: int) -> list[replay.Request]:
    """A scenario-shaped stream for one client: its users sign up, tweet, follow and unfollow each
    other, with the simulator's reads in between, as the course's simulator sends them (the
    replay's own request builder); users of their own, so that clients need no ordering."""
    users = [f"c{client}u{n}" for n in range(4)]
    actions: list[replay.Request] = []
    action_id = client * 100_000
    for user in users:
        action_id += 1
        actions.append(replay.write_request(replay.Action(action_id, "register", user, (f"{user}@x.org", "pw"))))
    step = 0
    while len(actions) < PER_CLIENT:
        step += 1
        action_id += 1
        user, other = users[step % 4], users[(step + 1) % 4]
        command = ("tweet", "follow", "tweet", "unfollow")[step % 4]
        args = (f"{user} says {step}",) if command == "tweet" else (other,)
        actions.append(replay.write_request(replay.Action(action_id, command, user, args)))
        actions.append(replay.read_request(replay.API_READS[step % 4], user))
    return actions


@dataclass
class Sent:
    request_id: str
    request: replay.Request
    status: int | None  # None: no answer
    error: str = ""


def replay_client(base_url: str, client: int, results: list[Sent], stop: threading.Event) -> None:
    refused = 0
    for number, request in enumerate(client_actions(client)):
        if stop.is_set() or refused >= 3:
            return
        request_id = f"c{client}-{number}"
        headers = {**API, "Content-Type": "application/json", "Connection": "close", "X-Request-Id": request_id}
        try:
            response = requests.request(request.method, base_url + request.path, data=request.body,
                                        headers=headers, timeout=20)
            results.append(Sent(request_id, request, response.status_code))
        except requests.ConnectionError as error:
            refused += 1
            results.append(Sent(request_id, request, None, repr(error)))
            time.sleep(0.05)


def error_kind(text: str) -> str:
    for kind in ("Connection refused", "reset", "RemoteDisconnected", "Broken pipe", "timed out"):
        if kind in text:
            return kind
    return text[:60]


def test_sigterm_under_load_drops_no_accepted_request(database_url: str, tmp_path: Path) -> None:
    with serving(database_url, tmp_path, workers=2) as served:
        results: list[Sent] = []
        stop = threading.Event()
        clients = [threading.Thread(target=replay_client, args=(served.url, n, results, stop))
                   for n in range(CLIENTS)]
        for thread in clients:
            thread.start()
        deadline = time.monotonic() + 60
        while len(results) < 60 and time.monotonic() < deadline:
            time.sleep(0.05)
        in_flight_at_signal = len(results)
        served.process.send_signal(signal.SIGTERM)
        returncode = served.process.wait(60)
        stop.set()
        for thread in clients:
            thread.join(30)

    assert returncode == 0
    accepted = served.access()
    answered = [sent for sent in results if sent.status is not None]
    unanswered = [sent for sent in results if sent.status is None]
    print(f"SIGTERM after {in_flight_at_signal} answers: {len(answered)} answered in all, "
          f"{len(unanswered)} without an answer: "
          f"{Counter(error_kind(s.error) for s in unanswered)}")
    assert len(answered) > in_flight_at_signal > 0  # some requests were still being served after SIGTERM
    wrong = [(s.request_id, s.request.kind, s.status) for s in answered if s.status not in s.request.ok]
    assert not wrong, wrong
    # Every request the server took in was answered, with what the server logged.
    by_id = {sent.request_id: sent for sent in results}
    dropped = [(rid, status, by_id[rid].error) for rid, status in accepted.items()
               if rid in by_id and by_id[rid].status != status]
    assert not dropped, dropped
    # Requests without an answer never reached the app, and none was applied. Most are refused;
    # under heavy load a few connections that the kernel had completed but no worker had taken
    # yet are reset when the last listener closes, and a connection accepted just before SIGTERM
    # whose request does not arrive within the drain window is closed (RemoteDisconnected): in
    # both cases the request was never read, which the two checks below hold it to.
    assert {error_kind(s.error) for s in unanswered} <= {"Connection refused", "reset", "RemoteDisconnected"}, \
        [s.error for s in unanswered]
    assert not [s.request_id for s in unanswered if s.request_id in accepted]
    lost_tweets = [json.loads(s.request.body or b"{}").get("content") for s in unanswered if s.request.kind == "tweet"]
    for text in lost_tweets:
        assert not sql(database_url, "SELECT 1 FROM messages WHERE text = %s", text)
    no_traceback(served)


# --- Encoding -----------------------------------------------------------------------------------

def test_a_database_that_is_not_utf8_is_refused_in_one_line(
    postgres_admin_url: str, database_url: str, tmp_path: Path
) -> None:
    from fixtures import with_database

    name = f"ascii_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'")
    ascii_url = with_database(postgres_admin_url, name)
    try:
        backup = minitwit("backup", "--dir", str(tmp_path / "dumps"), data_dir=tmp_path, database_url=database_url)
        assert backup.returncode == 0, backup.stderr
        archive = backup.stdout.strip().splitlines()[-1]
        for command in (["migrate"], ["serve", "--port", str(free_port())], ["restore", archive]):
            result = minitwit(*command, data_dir=tmp_path, database_url=ascii_url)
            assert result.returncode == 1, (command, result.stdout, result.stderr)
            output = result.stdout + result.stderr
            assert "Traceback" not in output, output
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and "refusing the database at " in lines[0], output
            assert lines[0].endswith(f"/{name}: its encoding is SQL_ASCII, MiniTwit needs UTF8 "
                                     "(create it with ENCODING 'UTF8', or initdb -E UTF8)"), lines
        assert not sql(ascii_url, "SELECT 1 FROM pg_tables WHERE schemaname = 'public'")  # nothing written
    finally:
        with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# --- Deployment files agree with the bounds -------------------------------------------------------

def seconds_of(duration: str) -> float:
    """Docker's duration strings as used here: 90s, 2m, 1m30s."""
    parts = re.findall(r"(\d+)([hms])", duration)
    assert parts, duration
    return sum(int(value) * {"h": 3600, "m": 60, "s": 1}[unit] for value, unit in parts)


def test_healthcheck_start_periods_cover_the_wait_for_postgresql() -> None:
    """An app still waiting for its database (within DB_CONNECT_TIMEOUT_SECONDS) is not unhealthy,
    and a stop lets in-flight requests finish (SHUTDOWN_TIMEOUT_SECONDS) before Docker's SIGKILL."""
    yaml = pytest.importorskip("yaml")
    settings = Settings()
    needed = settings.db.connect_timeout_seconds + 20  # then migrations and the workers' start
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    period = re.search(r"HEALTHCHECK .*--start-period=(\w+)", dockerfile)
    assert period and seconds_of(period.group(1)) >= needed
    for name in ("compose.yml", "stack.yml"):
        app = yaml.safe_load((REPO_ROOT / name).read_text())["services"]["app"]
        assert seconds_of(app["healthcheck"]["start_period"]) >= needed, name
        assert seconds_of(app.get("stop_grace_period", "10s")) > settings.shutdown_timeout_seconds, name


def test_requests_racing_for_the_last_connection_still_wait_a_bounded_time(database_url: str) -> None:
    """Database.session counts the connections taken or being taken, before it waits: of two
    requests that start together on a pool of one, the second waits with the acquire timeout
    (503 pool_timeout) rather than for as long as the first holds the connection. A wait that
    is cancelled gives its place back."""

    async def race() -> tuple[list[object], int, int]:
        database = Database(database_url, pool_size=1, limits=DatabaseLimits(acquire_timeout_seconds=0.3))
        await database.connect()
        try:
            async def hold(seconds: float) -> str:
                async with database.session() as db:
                    await db.fetch_value("get_latest")
                    await asyncio.sleep(seconds)
                return "served"

            outcomes = await asyncio.gather(hold(1.5), hold(0), return_exceptions=True)
            async with database.session():
                waiting = asyncio.ensure_future(hold(0))
                await asyncio.sleep(0.1)
                waiting.cancel()
                await asyncio.gather(waiting, return_exceptions=True)
                during = database.sessions_open
            return outcomes, during, database.sessions_open
        finally:
            await database.disconnect()

    outcomes, during, after = asyncio.run(race())
    assert outcomes[0] == "served"
    assert isinstance(outcomes[1], DatabaseUnavailable) and outcomes[1].reason == "pool_timeout", outcomes
    assert (during, after) == (1, 0)
