"""The ``minitwit`` command itself: migration checks, and stopping cleanly on a signal."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from cli_helpers import (
    minitwit,
    postgres_processes,
    wait_for_no_postgres,
)


def test_migrate_check_exit_codes(empty_database_url: str, tmp_path: Path) -> None:
    pending = minitwit("migrate", "--check", data_dir=tmp_path, database_url=empty_database_url)
    assert pending.returncode == 1
    assert "pending: 0001.initial-schema" in pending.stdout

    applied = minitwit("migrate", data_dir=tmp_path, database_url=empty_database_url)
    assert applied.returncode == 0 and "0001.initial-schema" in applied.stdout

    clean = minitwit("migrate", "--check", data_dir=tmp_path, database_url=empty_database_url)
    assert clean.returncode == 0 and "up to date" in clean.stdout


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_serve_and_its_embedded_postgres(
    embedded_dir: Path, server_process_factory, signum: int, workers: int
) -> None:
    # no DATABASE_URL: the embedded database, in embedded_dir
    process, _ = server_process_factory(None, workers=workers, env={"MINITWIT_DATA_DIR": str(embedded_dir)})
    assert postgres_processes(embedded_dir), "the embedded postgres runs while serving (else this test proves nothing)"

    process.send_signal(signum)  # to the main process only, as `docker stop` does
    process.wait(30)
    assert process.returncode == 0, process.stdout.read() if process.stdout else ""
    left = wait_for_no_postgres(embedded_dir, timeout=10)
    assert left == [], f"left running: {[p.cmdline() for p in left]}"
