"""Fixtures for the whole suite live in tests/fixtures.py (shared with sim_tests/)."""

from fixtures import *  # noqa: F403
