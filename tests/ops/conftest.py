"""Fixtures for the monitoring-as-code checks: where the repo and the Prometheus tools are."""

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OPS = REPO / "ops"
TOOLS_BIN = REPO / ".tools" / "bin"
INSTALL_HINT = "run `bash .ci/install-promtool.sh` (Debian package, unpacked into .tools/bin)"


def _find_tool(name: str) -> str | None:
    local = TOOLS_BIN / name
    if local.is_file():
        return str(local)
    return shutil.which(name)


@pytest.fixture(scope="session")
def promtool() -> str:
    path = _find_tool("promtool")
    if path is None:
        pytest.skip(f"promtool not found in {TOOLS_BIN} or on PATH; {INSTALL_HINT}")
    return path


@pytest.fixture(scope="session")
def amtool() -> str:
    path = _find_tool("amtool")
    if path is None:
        pytest.skip(f"amtool not found in {TOOLS_BIN} or on PATH; {INSTALL_HINT}")
    return path
