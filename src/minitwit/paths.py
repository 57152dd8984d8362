"""Where the project's non-Python files live (sql/, migrations/, templates/, static/, the scenario)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import TextIO


def project_root() -> Path:
    """MINITWIT_HOME when set (the container image), else the checkout this package runs from."""
    home = os.environ.get("MINITWIT_HOME")
    if home:
        return Path(home)
    checkout = Path(__file__).resolve().parents[2]
    return checkout if (checkout / "sql").is_dir() else Path.cwd()


ROOT = project_root()
SQL_DIR = ROOT / "sql"
MIGRATIONS_DIR = ROOT / "migrations"
TEMPLATES_DIR = ROOT / "templates"
STATIC_DIR = ROOT / "static"


def scenario_path() -> Path:
    """The recorded simulator scenario: MINITWIT_SCENARIO when set, else the copy in the repository."""
    return Path(os.environ.get("MINITWIT_SCENARIO") or ROOT / "sim_tests" / "data" / "minitwit_scenario.csv.gz")


def open_scenario(path: Path) -> TextIO:
    """The scenario file as text, whether plain or gzip-compressed (read by its magic bytes)."""
    with open(path, "rb") as probe:
        compressed = probe.read(2) == b"\x1f\x8b"
    if compressed:
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")
