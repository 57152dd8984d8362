"""Slow and greedy clients against a real ``minitwit serve`` (2 workers): bodies dripped a byte
at a time, oversized and never-ending headers, idle connections."""

from __future__ import annotations

import select
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests
from cli_helpers import clean_environment
from fixtures import embedded_data_dir, free_port, scratch_database, start_serve, stop_process, wait_until_up

SLOW_CLIENTS = 30
DRIP_SECONDS = 20
DRIP_EVERY_SECONDS = 2
PROBE_EVERY_SECONDS = 0.5
PUBLIC_WITHIN_SECONDS = 1.0  # the bound for /public while the clients drip
HEADER_TIMEOUT_SECONDS = 3


@pytest.fixture(scope="module")
def two_workers(postgres_admin_url: str, template_database: str) -> Iterator[str]:
    """One `minitwit serve` with 2 workers for the whole module (a start costs seconds)."""
    with scratch_database(postgres_admin_url, "minitwit_slow", template_database) as url:
        port, data_dir = free_port(), embedded_data_dir()
        environment = clean_environment(data_dir, DATABASE_URL=url, HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT_SECONDS))
        process = start_serve(port, 2, environment, subprocess.DEVNULL)
        try:
            wait_until_up(f"http://127.0.0.1:{port}", process)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop_process(process)
            shutil.rmtree(data_dir, ignore_errors=True)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@dataclass
class Drippers:
    """SLOW_CLIENTS connections, driven by one thread (not 30, which would starve the server on
    2 cores), each declaring a 1,000-byte body and sending one byte every 2 s; a connection the
    server closes is opened again, as an attacker would."""

    port: int
    stop: threading.Event = field(default_factory=threading.Event)
    answers: list[bytes] = field(default_factory=list)
    opened: int = 0

    def request_head(self, number: int) -> bytes:
        if number % 2:
            path, kind = "/login", "application/x-www-form-urlencoded"
        else:
            path, kind = "/register", "application/json"
        return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {kind}\r\n"
                "Content-Length: 1000\r\n\r\n").encode()

    def connect(self, number: int) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.sendall(self.request_head(number))
        sock.setblocking(False)
        self.opened += 1
        return sock

    def run(self) -> None:
        socks = [self.connect(number) for number in range(SLOW_CLIENTS)]
        try:
            while not self.stop.wait(DRIP_EVERY_SECONDS):
                for number, sock in enumerate(socks):
                    readable, _, _ = select.select([sock], [], [], 0)
                    try:
                        if readable:  # the server answered (408) or closed: take a new connection
                            self.answers.append(sock.recv(64))
                            raise ConnectionError
                        sock.send(b"x")
                    except OSError:
                        sock.close()
                        socks[number] = self.connect(number)
        finally:
            for sock in socks:
                sock.close()


def test_dripping_bodies_do_not_take_the_site_down(two_workers: str) -> None:
    """Acceptance: 30 slow-body clients on /login and JSON /register for 20 s; /public answers
    200 within 1 s throughout. The body is read before a database connection is taken, and a
    body that takes over 10 s is answered 408."""
    assert requests.get(two_workers + "/public", timeout=10).status_code == 200  # warm
    drippers = Drippers(port_of(two_workers))
    thread = threading.Thread(target=drippers.run, daemon=True)
    thread.start()
    probes: list[tuple[int, float]] = []
    try:
        time.sleep(1)  # every dripper is connected and waiting on its body
        deadline = time.monotonic() + DRIP_SECONDS
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                status = requests.get(two_workers + "/public", timeout=5).status_code
            except requests.RequestException:
                status = 0
            probes.append((status, time.monotonic() - started))
            time.sleep(PROBE_EVERY_SECONDS)
    finally:
        drippers.stop.set()
        thread.join(10)
    slow = [(status, round(seconds, 3)) for status, seconds in probes if status != 200 or seconds > PUBLIC_WITHIN_SECONDS]
    assert not slow, f"{len(slow)} of {len(probes)} probes failed or were slow: {slow}"
    assert any(answer.startswith(b"HTTP/1.1 408") for answer in drippers.answers), drippers.answers[:5]


def test_oversized_headers_are_refused(two_workers: str) -> None:
    with socket.create_connection(("127.0.0.1", port_of(two_workers)), timeout=10) as sock:
        sock.sendall(b"GET /public HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        try:
            for _ in range(40):  # 40 x 1 MB would be accepted by plain uvicorn with httptools
                sock.sendall(b"X-Filler: " + b"a" * (1 << 20) + b"\r\n")
        except OSError:
            pass  # closed while sending: refused
        answer = sock.recv(64)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer


def test_connections_that_send_nothing_are_closed(two_workers: str) -> None:
    with socket.create_connection(("127.0.0.1", port_of(two_workers)), timeout=3 * HEADER_TIMEOUT_SECONDS) as idle, \
            socket.create_connection(("127.0.0.1", port_of(two_workers)), timeout=3 * HEADER_TIMEOUT_SECONDS) as slow:
        slow.sendall(b"GET /public HTTP/1.1\r\n")  # the rest of the head never comes
        started = time.monotonic()
        assert idle.recv(64) == b"" and slow.recv(64) == b""  # closed by the server
        assert time.monotonic() - started < 2 * HEADER_TIMEOUT_SECONDS


def head_with_headers(filler_bytes: int) -> bytes:
    lines = [b"X-Filler-%d: %s\r\n" % (number, b"a" * 1000) for number in range(filler_bytes // 1000)]
    return b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + b"".join(lines) + b"\r\n"


@pytest.mark.parametrize("pieces", [1, 7])
def test_the_header_limit_holds_whether_the_head_comes_at_once_or_in_pieces(two_workers: str, pieces: int) -> None:
    """16 KiB of request line and headers (MAX_HEADER_BYTES): 12 KB passes and 20 KB is refused,
    sent in one piece (counted once the head is complete) or in several (counted as they come)."""
    for filler, expected in ((12_000, b"HTTP/1.1 200"), (20_000, b"HTTP/1.1 400")):
        head = head_with_headers(filler)
        with socket.create_connection(("127.0.0.1", port_of(two_workers)), timeout=10) as sock:
            size = -(-len(head) // pieces)
            for start in range(0, len(head), size):
                sock.sendall(head[start:start + size])
                time.sleep(0.05 if pieces > 1 else 0)
            answer = sock.recv(64)
        assert answer.startswith(expected), (filler, pieces, answer)
