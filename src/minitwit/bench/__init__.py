"""Benchmarks anyone can rerun: ``minitwit bench load`` (the scenario replay against a fresh
server), ``minitwit bench layers`` (what each optional layer costs a request), ``minitwit bench
scale`` (read latency at 10,000 and at 1,000,000 messages), ``minitwit bench soak`` (a steady load
for a long time: do memory and connections stay flat?) and ``minitwit bench sessions`` (what the
server-side session lookup costs a web page).
They need the optional ``bench`` extra (aiohttp): ``pip install -e '.[bench]'`` or ``make bench``.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from minitwit.settings import Settings

# name -> help; each is the module minitwit.bench.<name> with add_arguments(parser) and main(args).
KINDS = {
    "load": "replay the simulator scenario against a fresh server",
    "layers": "CPU per request with each optional layer changed in turn",
    "scale": "read latency at 10,000 vs 1,000,000 messages",
    "soak": "steady load for a long time: do RSS and connections stay flat?",
    "sessions": "cost of the server-side session lookup per web page",
}


def _runner(name: str) -> Any:
    def run(settings: Settings, args: argparse.Namespace) -> int:
        return int(importlib.import_module(f"minitwit.bench.{name}").main(args))

    return run


def add_commands(commands: Any) -> None:
    """Adds ``bench load``, ``layers``, ``scale``, ``soak`` and ``sessions`` to the ``minitwit`` command."""
    bench = commands.add_parser(
        "bench", help="benchmarks: scenario load replay, layer costs, read cost at scale, soak, session lookup")
    kinds = bench.add_subparsers(dest="bench", required=True)
    for name, help_text in KINDS.items():
        parser = kinds.add_parser(name, help=help_text)
        importlib.import_module(f"minitwit.bench.{name}").add_arguments(parser)
        parser.set_defaults(run=_runner(name))
