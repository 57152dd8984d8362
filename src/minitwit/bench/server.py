"""A fresh ``minitwit serve`` for a benchmark: its own embedded PostgreSQL in a new folder, the
production defaults (no settings but the data folder), and the CPU its processes use."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess  # nosec B404 - starts this package's own server
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, CPU ticks incl. reaped children) for every process."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        found[int(entry)] = (int(fields[1]), sum(int(x) for x in fields[11:15]))
    return found


def _tree(processes: dict[int, tuple[int, int]], roots: list[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in processes.items():
        children.setdefault(parent, []).append(pid)
    seen: set[int] = set()
    todo = [pid for pid in roots if pid in processes]
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(children.get(pid, []))
    return seen


def tree_cpu_seconds(roots: list[int]) -> float:
    """CPU seconds used so far by the processes under ``roots`` (reaped children included)."""
    processes = _processes()
    return sum(processes[pid][1] for pid in _tree(processes, roots)) / CLOCK_TICKS


@dataclass
class CpuSample:
    app_s: float  # the server's processes (uvicorn supervisor and workers)
    db_s: float  # its PostgreSQL


class BenchServer:
    """``with BenchServer() as server:`` serves on ``server.url`` until the block ends."""

    def __init__(self, *, workers: int | None = None, env: dict[str, str] | None = None,
                 database_url: str | None = None, keep: bool = False) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="minitwit-bench-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.database_url = database_url
        self.extra_env = env or {}
        self.keep = keep
        self.log_path = self.data_dir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        environment = {k: v for k, v in os.environ.items()
                       if not k.startswith(("MINITWIT_", "DATABASE_URL", "DB_POOL"))}
        environment["MINITWIT_DATA_DIR"] = str(self.data_dir)
        if self.database_url:
            environment["DATABASE_URL"] = self.database_url
        environment.update(self.extra_env)
        command = [sys.executable, "-m", "minitwit", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.workers:
            command += ["--workers", str(self.workers)]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)  # nosec B603 - fixed argv
        try:
            self._wait_until_up()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_until_up(self, timeout: float = 120) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"minitwit serve exited during start-up:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1):  # nosec B310 - loopback
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"minitwit serve did not answer within {timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _postmaster_pids(self) -> list[int]:
        pids = []
        for pidfile in self.data_dir.glob("**/postmaster.pid"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                pids.append(int(pidfile.read_text().split()[0]))
        return pids

    def cpu(self) -> CpuSample:
        """CPU seconds used so far by the server's process tree and by its PostgreSQL."""
        assert self.process is not None
        processes = _processes()
        db = _tree(processes, self._postmaster_pids())
        app = _tree(processes, [self.process.pid]) - db
        return CpuSample(sum(processes[p][1] for p in app) / CLOCK_TICKS,
                         sum(processes[p][1] for p in db) / CLOCK_TICKS)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        for pid in self._postmaster_pids():  # the embedded database stops with the server; make sure
            try:
                os.kill(pid, signal.SIGINT)  # PostgreSQL's fast shutdown
            except ProcessLookupError:
                continue
            for _ in range(100):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.1)
        if not self.keep:
            shutil.rmtree(self.data_dir, ignore_errors=True)
