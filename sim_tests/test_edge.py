"""The TLS edge for real: Debian's Caddy running ops/caddy/Caddyfile in front of two
`minitwit serve` replicas on one database, the way the stack runs it.

The replicas listen on one port at two loopback addresses (127.0.0.2, 127.0.0.3), and a stand-in
for Docker's embedded DNS answers Caddy's `tasks.app` question with them. Each replica in turn is
replaced as Swarm replaces a task: out of the DNS answers first, SIGTERM two seconds later, and
started again. With a Caddy that can retry a request with a body (2.11.2 and later, the stack's
image) the stopped replica is also put back in the answers while it is still down (a stale
answer, a crashed task), so that writes are sent to it, refused, and retried on the other one.
Meanwhile the simulator's scenario goes through HTTPS, one request at a time.

The replay takes two minutes or more on a busy machine: `make edge` runs it (MINITWIT_EDGE_REPLAY=1),
`make test` the rest. A reply slower than 0.3 s is the simulator's timeout. As in test_scenario_replay, tests do not
fail on the clock of a shared machine: such replies are counted and printed, and
MINITWIT_STRICT_TIMEOUT=1 makes them errors.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
import requests
import urllib3
from edge_helpers import Edge, Replica, StubDns, caddy_binary, caddy_version, same_port_on
from fixtures import embedded_data_dir, scratch_database, sql
from security_helpers import client_from
from test_scenario_replay import (
    HEADERS,
    SCENARIO,
    SIMULATOR_TIMEOUT,
    STRICT_TIMEOUT,
    expected_state,
    read_scenario,
    request_for,
    succeeded,
)

CADDY = caddy_binary()
RETRIES_BODIES = CADDY is not None and caddy_version(CADDY) >= (2, 11, 2)  # caddyserver/caddy#7547
pytestmark = [
    pytest.mark.skipif(CADDY is None, reason="caddy is not installed (apt-get install caddy; .ci/run does)"),
]

REPLICA_ADDRESSES = ["127.0.0.2", "127.0.0.3"]
REPLAY_ACTIONS = 5000
SWARM_CONVERGE_DELAY = 2.0  # moby: a task leaves the DNS answers this long before its SIGTERM
LOGIN_FAILURES_PER_ADDRESS = 3


@dataclass
class EdgeStack:
    edge: Edge
    dns: StubDns
    replicas: list[Replica]
    database_url: str

    @property
    def verify(self) -> str:
        return str(self.edge.root_certificate)


@pytest.fixture(scope="module")
def stack(postgres_admin_url: str, template_database: str) -> Iterator[EdgeStack]:
    assert CADDY is not None
    folder = embedded_data_dir()
    dns = StubDns()
    port = same_port_on(REPLICA_ADDRESSES)
    with scratch_database(postgres_admin_url, "minitwit_edge", template_database) as database_url:
        replicas = [
            Replica(address, port, database_url, folder, LOG_LEVEL="WARNING",
                    # Caddy reaches the replicas from 127.0.0.1: the only peer whose
                    # X-Forwarded-For they believe, as the stack's app believes the overlay's.
                    FORWARDED_ALLOW_IPS="127.0.0.1",
                    THROTTLE_LOGIN_FREE_FAILURES_PER_ADDRESS=str(LOGIN_FAILURES_PER_ADDRESS))
            for address in REPLICA_ADDRESSES
        ]
        edge = None
        try:
            for replica in replicas:
                replica.start()
            dns.set(REPLICA_ADDRESSES)
            edge = Edge(CADDY, folder, EDGE_UPSTREAM_NAME="tasks.app", EDGE_UPSTREAM_PORT=str(port),
                        EDGE_UPSTREAM_RESOLVER=dns.address, EDGE_GRAFANA_UPSTREAM=f"127.0.0.2:{port}")
            edge.wait_until_serving("/health")
            yield EdgeStack(edge, dns, replicas, database_url)
        finally:
            if edge is not None:
                edge.stop()
            for replica in replicas:
                replica.kill()
            dns.close()
            shutil.rmtree(folder, ignore_errors=True)  # failures above carry the logs' last lines


# --- zero failed requests while each replica is replaced ----------------------------------------


@dataclass
class Tally:
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    slow: list[str] = field(default_factory=list)
    slowest_ms: float = 0.0

    def record(self, label: str, began: float, ok: bool, detail: str) -> None:
        took = (time.monotonic() - began) * 1000
        self.requests += 1
        self.slowest_ms = max(self.slowest_ms, took)
        if took > SIMULATOR_TIMEOUT * 1000:
            self.slow.append(f"{label}: {took:.0f} ms")
        if not ok:
            self.errors.append(f"{label}: {detail}")


def replace_each_replica(stack: EdgeStack, events: list[str], failures: list[str]) -> None:
    """Swarm's order for each task in turn (out of DNS, 2 s, SIGTERM), then start it again."""
    try:
        for replica in stack.replicas:
            stack.dns.set([r.address for r in stack.replicas if r is not replica])
            time.sleep(SWARM_CONVERGE_DELAY)
            began = time.monotonic()
            status = replica.stop()
            events.append(f"{replica.address} stopped (exit {status}) {time.monotonic() - began:.1f} s after SIGTERM")
            if RETRIES_BODIES:  # listed but down: every request sent to it must be retried on the other
                stack.dns.set(REPLICA_ADDRESSES)
                time.sleep(1.5)
            began = time.monotonic()
            replica.start()
            stack.dns.set(REPLICA_ADDRESSES)  # as Swarm does, once the new task is healthy
            events.append(f"{replica.address} serving again after {time.monotonic() - began:.1f} s")
            time.sleep(1.0)
    except Exception as error:  # reported by the test, which owns the assertions
        failures.append(f"{type(error).__name__}: {error}")


@pytest.mark.skipif(os.environ.get("MINITWIT_EDGE_REPLAY") != "1", reason="make edge runs it (MINITWIT_EDGE_REPLAY=1)")
@pytest.mark.skipif(not SCENARIO.exists(), reason=f"scenario file not found at {SCENARIO}")
def test_replay_through_https_loses_nothing_while_replicas_are_replaced(
    stack: EdgeStack, capsys: pytest.CaptureFixture
) -> None:
    actions = read_scenario(REPLAY_ACTIONS)
    base, timeout = stack.edge.https, SIMULATOR_TIMEOUT if STRICT_TIMEOUT else 10.0
    # One kept-alive connection to the edge (a new TLS handshake per request would measure the
    # client's TLS, not the edge); the edge keeps its own pool to the replicas.
    session = requests.Session()
    session.headers.update({key: value for key, value in HEADERS.items() if key != "Connection"})
    session.verify = stack.verify
    tally, events, failures = Tally(), [], []
    disruption = threading.Thread(target=replace_each_replica, args=(stack, events, failures), daemon=True)

    def read_latest() -> None:
        began = time.monotonic()
        try:
            response = session.get(base + "/latest", verify=stack.verify, timeout=timeout)
            tally.record("GET /latest", began, response.status_code == 200, str(response.status_code))
        except requests.RequestException as error:
            tally.record("GET /latest", began, False, type(error).__name__)

    started = time.monotonic()
    for index, action in enumerate(actions):
        if index == 100:
            disruption.start()
        if index == len(actions) - 100:  # both replacements happen under load, however fast the replay
            deadline = time.monotonic() + 120
            while disruption.is_alive() and time.monotonic() < deadline:
                read_latest()
        path, body = request_for(action)
        label = f"{action.action_id} {action.command}"
        began = time.monotonic()
        try:
            response = session.post(base + path, data=json.dumps(body), verify=stack.verify,
                                    params={"latest": action.action_id}, timeout=timeout)
            tally.record(label, began, succeeded(action, response.status_code),
                         f"{response.status_code} {response.text[:120]}")
        except requests.RequestException as error:
            tally.record(label, began, False, type(error).__name__)
    elapsed = time.monotonic() - started
    disruption.join(60)

    with capsys.disabled():  # the figures belong in CI's log
        print(f"\nedge replay: {len(actions)} actions + {tally.requests - len(actions)} reads through Caddy "
              f"(HTTPS) in {elapsed:.1f} s ({tally.requests / elapsed:.0f} requests/s), slowest "
              f"{tally.slowest_ms:.0f} ms, {len(tally.errors)} failed, {len(tally.slow)} over 300 ms "
              f"{tally.slow[:5]}\n  " + "\n  ".join(events)
              + ("" if RETRIES_BODIES else f"\n  caddy {caddy_version(CADDY)} cannot retry a write after a failed"
                 " dial (caddyserver/caddy#7546): no stale DNS answer while a replica is down"))
    assert not disruption.is_alive() and failures == [], failures
    assert len(events) == 2 * len(stack.replicas), events
    assert tally.errors == [], tally.errors[:20]

    expected = expected_state(actions)
    latest = requests.get(base + "/latest", verify=stack.verify, timeout=10).json()
    assert latest == {"latest": expected["latest"]}
    for table in ("users", "messages", "follows"):
        assert sql(stack.database_url, f"SELECT count(*) FROM {table}")[0][0] == expected[table], table


# --- HTTPS only, HSTS, compression --------------------------------------------------------------


def test_https_answers_carry_hsts_and_http_redirects(stack: EdgeStack) -> None:
    page = requests.get(stack.edge.https + "/public", verify=stack.verify, timeout=10,
                        headers={"Accept-Encoding": "gzip"}, stream=True)
    assert page.status_code == 200
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")
    assert page.headers["Content-Encoding"] == "gzip"
    assert b"<html" in gzip.decompress(page.raw.read()).lower()

    api = requests.get(stack.edge.https + "/openapi.json", verify=stack.verify, timeout=10,
                       headers={"Accept-Encoding": "zstd, gzip"})
    assert "Strict-Transport-Security" in api.headers and api.headers["Content-Encoding"] == "zstd"
    tiny = requests.get(stack.edge.https + "/latest", verify=stack.verify, timeout=10)
    assert "Content-Encoding" not in tiny.headers, "Caddy leaves answers under 512 bytes alone"

    plain = requests.get(stack.edge.http + "/public?x=1", allow_redirects=False, timeout=10)
    assert plain.status_code in (301, 308)
    # To the same host and path over HTTPS (Caddy 2.6 names no port: in production it is 443).
    location = urlsplit(plain.headers["Location"])
    assert (location.scheme, location.hostname) == ("https", "localhost")
    assert (location.path, location.query) == ("/public", "x=1")
    assert "Strict-Transport-Security" not in plain.headers  # HSTS means nothing over plain HTTP


def test_grafana_has_its_own_host_name_behind_the_same_edge(stack: EdgeStack) -> None:
    """grafana.<domain> goes to EDGE_GRAFANA_UPSTREAM (a replica stands in for Grafana here)."""
    name = "grafana.localhost"  # no resolver knows it here: connect to 127.0.0.1, ask for it by name
    with urllib3.HTTPSConnectionPool("127.0.0.1", stack.edge.https_port, server_hostname=name,
                                     assert_hostname=name, ca_certs=stack.verify, cert_reqs="CERT_REQUIRED") as pool:
        answer = pool.request("GET", "/health", headers={"Host": f"{name}:{stack.edge.https_port}"}, timeout=10)
    assert answer.status == 200 and "Strict-Transport-Security" in answer.headers


# --- the client's own address, never the proxy's, never a forged one ----------------------------


def failed_sign_in(session: requests.Session, url: str, **headers: str) -> int:
    return session.post(url + "/login", data={"username": "nobody", "password": "wrong"}, headers=headers,
                        timeout=10, verify=session.verify).status_code  # over REQUESTS_CA_BUNDLE


def address_hits(database_url: str) -> dict[str, int]:
    rows = sql(database_url, "SELECT key, failures FROM login_throttle WHERE scope = 'login-address'")
    return {key: failures for key, failures in rows}


def lengthen_the_wait(database_url: str) -> None:
    """Four more failures on the books: the address waits 16 s, not 1 s, so a slow machine
    cannot reach the end of the wait before the next request (minitwit.throttle's delays)."""
    sql(database_url, "UPDATE login_throttle SET failures = failures + 4 WHERE scope = 'login-address'")


def test_sign_in_throttling_counts_the_client_behind_the_edge(stack: EdgeStack) -> None:
    sql(stack.database_url, "DELETE FROM login_throttle")
    edge, alice = stack.edge.https, client_from("127.0.0.7")
    alice.verify = stack.verify
    for _ in range(LOGIN_FAILURES_PER_ADDRESS):
        assert failed_sign_in(alice, edge) == 200
    assert address_hits(stack.database_url) == {"127.0.0.7": LOGIN_FAILURES_PER_ADDRESS}
    lengthen_the_wait(stack.database_url)
    assert failed_sign_in(alice, edge) == 429, "the client's own address is throttled"

    # Another client behind the same proxy is not: the proxy's address is never the key, and a
    # forged X-Forwarded-For is replaced by the edge with the address it saw.
    bob = client_from("127.0.0.8")
    bob.verify = stack.verify
    assert failed_sign_in(bob, edge) == 200
    assert failed_sign_in(bob, edge, **{"X-Forwarded-For": "127.0.0.9"}) == 200
    assert address_hits(stack.database_url)["127.0.0.8"] == 2
    assert "127.0.0.1" not in address_hits(stack.database_url)


def test_a_forged_forwarded_header_sent_straight_to_a_replica_is_ignored(stack: EdgeStack) -> None:
    sql(stack.database_url, "DELETE FROM login_throttle")
    mallory = client_from("127.0.0.9")
    for _ in range(LOGIN_FAILURES_PER_ADDRESS):
        failed_sign_in(mallory, stack.replicas[0].url, **{"X-Forwarded-For": "203.0.113.7"})
    assert address_hits(stack.database_url) == {"127.0.0.9": LOGIN_FAILURES_PER_ADDRESS}
    lengthen_the_wait(stack.database_url)
    assert failed_sign_in(mallory, stack.replicas[0].url, **{"X-Forwarded-For": "203.0.113.8"}) == 429
