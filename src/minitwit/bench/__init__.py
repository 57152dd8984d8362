"""Benchmarks anyone can rerun: ``minitwit bench load`` (the scenario replay against a fresh
server), ``minitwit bench scale`` (read latency at 10,000 and at 1,000,000 messages) and
``minitwit bench soak`` (a steady load for a long time: do memory and connections stay flat?) and
``minitwit bench sessions`` (what the server-side session lookup costs a web page).
They need the optional ``bench`` extra (aiohttp): ``pip install -e '.[bench]'`` or ``make bench``.
"""

from __future__ import annotations

import argparse
from typing import Any

from minitwit.settings import Settings


def _load(settings: Settings, args: argparse.Namespace) -> int:
    from minitwit.bench import load

    return load.main(args)


def _scale(settings: Settings, args: argparse.Namespace) -> int:
    from minitwit.bench import scale

    return scale.main(args)


def _soak(settings: Settings, args: argparse.Namespace) -> int:
    from minitwit.bench import soak

    return soak.main(args)


def _sessions(settings: Settings, args: argparse.Namespace) -> int:
    from minitwit.bench import sessions

    return sessions.main(args)


def add_commands(commands: Any) -> None:
    """Adds ``bench load``, ``scale``, ``soak`` and ``sessions`` to the ``minitwit`` command."""
    from minitwit.bench import load, scale, sessions, soak

    bench = commands.add_parser("bench", help="benchmarks: scenario load replay, read cost at scale")
    kinds = bench.add_subparsers(dest="bench", required=True)
    load_parser = kinds.add_parser("load", help="replay the simulator scenario against a fresh server")
    load.add_arguments(load_parser)
    load_parser.set_defaults(run=_load)
    scale_parser = kinds.add_parser("scale", help="read latency at 10,000 vs 1,000,000 messages")
    scale.add_arguments(scale_parser)
    scale_parser.set_defaults(run=_scale)
    soak_parser = kinds.add_parser("soak", help="steady load for a long time: do RSS and connections stay flat?")
    soak.add_arguments(soak_parser)
    soak_parser.set_defaults(run=_soak)
    sessions_parser = kinds.add_parser("sessions", help="cost of the server-side session lookup per web page")
    sessions.add_arguments(sessions_parser)
    sessions_parser.set_defaults(run=_sessions)
