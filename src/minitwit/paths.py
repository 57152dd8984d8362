"""Where the project's non-Python files live (sql/, migrations/, templates/, static/)."""

from __future__ import annotations

import os
from pathlib import Path


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
