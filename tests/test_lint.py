"""Static checks in the suite: ruff and mypy on the code, as configured in pyproject/setup.cfg."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        [str(BIN / "ruff"), "check", "src", "tests", "sim_tests"],
        [str(BIN / "mypy")],
    ],
    ids=["ruff", "mypy"],
)
def test_static_check_passes(command: list[str]) -> None:
    if not Path(command[0]).exists():
        pytest.skip(f"{Path(command[0]).name} is not installed in this virtualenv (make install adds it)")
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
