"""``minitwit bench load``: a fresh server on the embedded database, the scenario replayed against it,
and the figures: throughput, latency per request kind, failures, requests over 300 ms, CPU."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

from minitwit.bench import replay
from minitwit.bench.server import BenchServer
from minitwit.bench.stats import format_load_report, load_report
from minitwit.paths import scenario_path


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    return (ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7]) / hz, sum(ticks[:8]) / hz


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--csv", type=Path, default=scenario_path(),
                        help="scenario file, plain or .gz (default: %(default)s)")
    parser.add_argument("-c", "--concurrency", type=int, default=8, help="requests in flight (default 8)")
    parser.add_argument("--reads", type=int, default=1, help="reads after every write (default 1)")
    parser.add_argument("--html", action="store_true", help="reads include GET /public and GET /<user>")
    parser.add_argument("--limit", type=int, help="replay only the first N actions")
    parser.add_argument("--seed", type=int, default=1, help="seed of the read mix")
    parser.add_argument("--keepalive", action="store_true", help="reuse connections (the simulator does not)")
    parser.add_argument("--url", help="replay against this running server instead of a fresh one")
    parser.add_argument("--workers", type=int, help="worker processes of the fresh server (default: its own)")
    parser.add_argument("--json", type=Path, help="report file (default bench-results/load-<time>.json)")


def run(args: argparse.Namespace) -> dict:
    actions = replay.read_scenario(args.csv, args.limit)
    requests = replay.plan(actions, args.reads, args.html, args.seed)
    if args.url:
        outcomes, wall = asyncio.run(replay.run(args.url, requests, args.concurrency, keepalive=args.keepalive))
        report = load_report(outcomes, wall, replay.SLOW_MS)
    else:
        with BenchServer(workers=args.workers) as server:
            cpu0, busy0, client0 = server.cpu(), machine_busy(), time.process_time()
            outcomes, wall = asyncio.run(
                replay.run(server.url, requests, args.concurrency, keepalive=args.keepalive))
            cpu1, busy1, client1 = server.cpu(), machine_busy(), time.process_time()
        report = load_report(outcomes, wall, replay.SLOW_MS)

        def per_request(seconds: float) -> float:
            return round(1000 * seconds / len(outcomes), 3)

        app, db, client = cpu1.app_s - cpu0.app_s, cpu1.db_s - cpu0.db_s, client1 - client0
        report["cpu"] = {
            "app_s": round(app, 2), "db_s": round(db, 2), "client_s": round(client, 2),
            "server_ms_per_request": per_request(app + db), "app_ms_per_request": per_request(app),
            "db_ms_per_request": per_request(db), "client_ms_per_request": per_request(client),
            # The client does the same work in every run, so the machine's speed of the moment
            # moves its CPU per request as it moves the server's: compared by this ratio, two
            # runs of the same code differ by 1-3 %, where their CPU per request moves by 10 % and more
            # (docs/performance.md, "Reading a run").
            "app_per_client_cpu": round(app / max(1e-9, client), 3),
            "machine_busy_pct": round(100 * (busy1[0] - busy0[0]) / max(1e-9, busy1[1] - busy0[1]), 1),
        }
    report.update({"scenario": str(args.csv), "actions": len(actions), "concurrency": args.concurrency,
                   "reads_per_write": args.reads, "html": args.html, "keepalive": args.keepalive})
    return report


def main(args: argparse.Namespace) -> int:
    report = run(args)
    print(format_load_report(report))
    path = args.json or Path("bench-results") / time.strftime("load-%Y%m%d-%H%M%S.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report: {path}")
    return 0
