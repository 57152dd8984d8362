"""The Docker CLI, called with bounded time; and bounded waiting for a condition."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
DOCKER = os.environ.get("E2E_DOCKER") or shutil.which("docker") or "docker"


class E2EError(RuntimeError):
    """A step of the suite failed; the message says which and why."""


def run(args: list[str], *, timeout: float = 600, check: bool = True, input: str | None = None,
        env: dict[str, str] | None = None, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, input=input,
                            env={**os.environ, **(env or {})}, cwd=cwd)
    if check and result.returncode != 0:
        raise E2EError(f"{' '.join(args[:4])}... exited {result.returncode}:\n{result.stdout[-2000:]}{result.stderr[-3000:]}")
    return result


def docker(*args: str, timeout: float = 600, check: bool = True, input: str | None = None,
           env: dict[str, str] | None = None, cwd: str | None = None) -> str:
    return run([DOCKER, *args], timeout=timeout, check=check, input=input, env=env, cwd=cwd).stdout.strip()


def docker_json(*args: str) -> Any:
    return json.loads(docker(*args) or "null")


def lines(*args: str) -> list[str]:
    return [line for line in docker(*args, check=False).splitlines() if line.strip()]


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 2.0) -> T:
    """Calls ``probe`` until it returns something other than None/False, at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except (E2EError, subprocess.TimeoutExpired, OSError, ValueError) as error:
            last_error = error
        time.sleep(interval)
    raise E2EError(f"timed out after {timeout:.0f} s waiting for {what}" + (f" (last error: {last_error})" if last_error else ""))


def image_exists(name: str) -> bool:
    return run([DOCKER, "image", "inspect", name], check=False, timeout=60).returncode == 0


def log(message: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {message}", flush=True)
