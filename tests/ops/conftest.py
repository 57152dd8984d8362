"""Fixtures for the monitoring-as-code checks: where the repo and the Prometheus tools are."""

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OPS = REPO / "ops"
TOOLS_BIN = REPO / ".tools" / "bin"
INSTALL_HINT = "run `bash .ci/install-promtool.sh` (Debian package, unpacked into .tools/bin)"


def _tool(name: str) -> str:
    """The path of a Prometheus tool, from .tools/bin or PATH; the test is skipped without it."""
    local = TOOLS_BIN / name
    path = str(local) if local.is_file() else shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not found in {TOOLS_BIN} or on PATH; {INSTALL_HINT}")
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return _tool("promtool")


@pytest.fixture(scope="session")
def amtool() -> str:
    return _tool("amtool")
