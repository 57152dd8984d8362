"""The scenario replay uses the same fixtures as tests/ (a real PostgreSQL, live servers)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fixtures import *  # noqa: F403
