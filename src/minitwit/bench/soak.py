"""``minitwit bench soak``: the scenario on a loop at a steady rate for a long time (10 minutes by
default, hours if asked), to see whether the server's memory and connections stay flat.

A fresh ``minitwit serve`` (its own embedded PostgreSQL, the production defaults) gets the
simulator's requests (the load replay's, with its reads, HTML pages included) at a fixed rate,
the scenario starting over when it ends (a user registered again gets 400, which the simulator
accepts). Every interval it prints one line: throughput, p99, errors, the RSS and open sockets of
each worker, and PostgreSQL's backends. The verdict at the end compares the first sample after
the warm-up with the last: RSS may grow at most 10 %; PostgreSQL's backends may not pass the
pools' bound (workers x DB_POOL_SIZE; within it the pool grows and shrinks with the load), and the
workers' other sockets may not creep upward. It is a benchmark, not a test: it reports, and exits
1 only when not flat.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg

from minitwit.bench import replay
from minitwit.bench.server import BenchServer
from minitwit.bench.stats import percentile
from minitwit.embedded import EmbeddedPostgres
from minitwit.migrations import libpq_url
from minitwit.paths import scenario_path

MAX_RSS_GROWTH = 0.10  # the issue: RSS after warm-up grows at most 10 %
POOL_SIZE = 10  # DB_POOL_SIZE's default: the most connections a worker may hold


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--csv", type=Path, default=scenario_path(),
                        help="scenario file, plain or .gz (default: %(default)s)")
    parser.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    parser.add_argument("--rate", type=float, default=40, help="requests per second (default 40)")
    parser.add_argument("--interval", type=float, default=60, help="seconds between report lines (default 60)")
    parser.add_argument("--warmup", type=float, default=60, help="seconds before the baseline sample (default 60)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the server (default 2)")
    parser.add_argument("--concurrency", type=int, default=32, help="most requests in flight (default 32)")
    parser.add_argument("--html", action=argparse.BooleanOptionalAction, default=True,
                        help="reads include GET /public and GET /<user> (default: yes)")
    parser.add_argument("--json", type=Path, help="report file (default bench-results/soak-<time>.json)")


@dataclass
class Window:
    """What the requests of one interval did."""

    latencies: list[float] = field(default_factory=list)
    count: int = 0
    errors: int = 0
    failures: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: replay.Outcome) -> None:
        self.count += 1
        if outcome.ms is not None:
            self.latencies.append(outcome.ms)
        if not outcome.ok:
            self.errors += 1
            key = f"{outcome.kind}:{outcome.status}"
            self.failures[key] = self.failures.get(key, 0) + 1


@dataclass
class Sample:
    """One report line."""

    minute: float
    requests: int
    throughput_rps: float
    p99_ms: float | None
    errors: int
    failures: dict[str, int]
    rss_mib: dict[int, float]  # worker pid -> resident memory
    sockets: dict[int, int]  # worker pid -> open sockets (clients and PostgreSQL)
    backends: int  # PostgreSQL client backends of the app (application_name = minitwit)


def workers_of(server: BenchServer) -> list[psutil.Process]:
    """The processes that serve requests: the spawned workers, or the server itself with one."""
    assert server.process is not None
    parent = psutil.Process(server.process.pid)
    spawned = [child for child in parent.children()  # not multiprocessing's resource tracker
               if any("spawn_main" in part for part in child.cmdline())]
    return spawned or [parent]


def app_backends(admin_url: str) -> int:
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
            "AND application_name = 'minitwit'").fetchone()
    return int(row[0]) if row else 0


def sample(server: BenchServer, admin_url: str, window: Window, seconds: float, minute: float) -> Sample:
    rss, sockets = {}, {}
    for worker in workers_of(server):
        try:
            rss[worker.pid] = round(worker.memory_info().rss / 2**20, 1)
            sockets[worker.pid] = len(worker.net_connections(kind="all"))
        except psutil.NoSuchProcess:
            continue
    ordered = sorted(window.latencies)
    p99 = percentile(ordered, 99)
    return Sample(round(minute, 2), window.count, round(window.count / seconds, 1),
                  None if p99 is None else round(p99, 1), window.errors, window.failures, rss, sockets,
                  app_backends(admin_url))


def format_sample(item: Sample) -> str:
    rss = " ".join(f"{pid}:{mib:.1f}" for pid, mib in item.rss_mib.items())
    sockets = " ".join(f"{pid}:{n}" for pid, n in item.sockets.items())
    p99 = "-" if item.p99_ms is None else f"{item.p99_ms:.1f}"
    return (f"[{item.minute:6.1f} min] {item.throughput_rps:6.1f} req/s  p99 {p99:>6} ms  errors {item.errors:<4}"
            f" | RSS MiB {rss} | sockets {sockets} | PostgreSQL backends {item.backends}"
            + (f" | failures {item.failures}" if item.failures else ""))


def endless(actions: list[replay.Action], html: bool) -> Iterator[replay.Request]:
    """The scenario's requests, starting over (with a new read mix) each time it ends."""
    for cycle in itertools.count(1):
        yield from replay.plan(actions, 1, html, cycle)


async def drive(server: BenchServer, admin_url: str, args: argparse.Namespace,
                actions: list[replay.Action]) -> list[Sample]:
    """Sends requests at ``args.rate`` for ``args.duration`` seconds; a sample every interval."""
    samples: list[Sample] = []
    window = Window()
    slots = asyncio.Semaphore(args.concurrency)
    loop = asyncio.get_running_loop()
    async with replay.client_session(server.url) as session:

        async def send(request: replay.Request) -> None:
            try:
                window.add(await replay.send(session, request))
            finally:
                slots.release()

        began = last = loop.time()

        async def take_sample() -> None:
            nonlocal window, last
            now = loop.time()
            finished, window = window, Window()
            item = await asyncio.to_thread(sample, server, admin_url, finished, now - last, (now - began) / 60)
            last = now
            samples.append(item)
            print(format_sample(item), flush=True)

        async def report() -> None:
            while True:
                await asyncio.sleep(args.interval)
                await take_sample()

        reporter = asyncio.create_task(report())
        tasks: set[asyncio.Task] = set()
        started = loop.time()
        for number, request in enumerate(endless(actions, args.html)):
            due = started + number / args.rate
            if due - started >= args.duration:
                break
            await asyncio.sleep(max(0.0, due - loop.time()))
            await slots.acquire()
            task = asyncio.create_task(send(request))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
        reporter.cancel()
        if window.count:  # the last, shorter interval
            await take_sample()
    return samples


def verdict(samples: list[Sample], warmup_minutes: float, workers: int) -> dict[str, object]:
    """Flat or not: RSS growth per worker and connection counts, baseline (after warm-up) to end."""
    after = [item for item in samples if item.minute >= warmup_minutes] or samples[-1:]
    if len(after) < 2:
        return {"flat": None, "why": "too short: fewer than two samples after the warm-up"}
    first, last = after[0], after[-1]
    growth = {pid: round((last.rss_mib[pid] - first.rss_mib[pid]) / first.rss_mib[pid], 4)
              for pid in first.rss_mib if pid in last.rss_mib}
    restarted = sorted(set(first.rss_mib) ^ set(last.rss_mib))
    most_backends = max(item.backends for item in after)
    # The pool may grow to its bound and shrink again (idle connections close after 5 minutes):
    # that is not a leak. A leak shows as backends past the bound, or as the workers' other
    # sockets (clients, anything not a pooled connection) creeping upward.
    other_sockets = [sum(item.sockets.values()) - item.backends for item in (first, last)]
    rss_flat = not restarted and all(value <= MAX_RSS_GROWTH for value in growth.values())
    connections_flat = most_backends <= workers * POOL_SIZE and other_sockets[1] - other_sockets[0] <= 2 * workers
    return {
        "flat": rss_flat and connections_flat, "rss_flat": rss_flat, "connections_flat": connections_flat,
        "baseline_minute": first.minute, "end_minute": last.minute,
        "rss_mib_baseline": first.rss_mib, "rss_mib_end": last.rss_mib, "rss_growth": growth,
        "workers_restarted": restarted,
        "backends_baseline": first.backends, "backends_end": last.backends, "backends_max": most_backends,
        "sockets_baseline": first.sockets, "sockets_end": last.sockets, "other_sockets": other_sockets,
        "pool_bound": workers * POOL_SIZE,
        "errors": sum(item.errors for item in samples), "requests": sum(item.requests for item in samples),
    }


def main(args: argparse.Namespace) -> int:
    if not args.csv.exists():
        print(f"minitwit: scenario file not found: {args.csv} (give --csv)")
        return 2
    actions = replay.read_scenario(args.csv)
    folder = Path(tempfile.mkdtemp(prefix="minitwit-soak-pg-"))
    embedded = EmbeddedPostgres(folder)
    try:
        url = embedded.start()
        print(f"soak: {args.duration:g} s at {args.rate:g} req/s, {args.workers} workers, a line every "
              f"{args.interval:g} s; baseline after {args.warmup:g} s of warm-up", flush=True)
        with BenchServer(workers=args.workers, database_url=url) as server:
            first = workers_of(server)
            print("soak: at start, RSS MiB " + " ".join(
                f"{w.pid}:{w.memory_info().rss / 2**20:.1f}" for w in first)
                + f", PostgreSQL backends {app_backends(url)}", flush=True)
            samples = asyncio.run(drive(server, url, args, actions))
    finally:
        embedded.stop()
        shutil.rmtree(folder, ignore_errors=True)
    result = verdict(samples, args.warmup / 60, args.workers)
    report = {"duration_s": args.duration, "rate_rps": args.rate, "workers": args.workers,
              "scenario": str(args.csv), "samples": [asdict(item) for item in samples], "verdict": result}
    print(format_verdict(result))
    path = args.json or Path("bench-results") / time.strftime("soak-%Y%m%d-%H%M%S.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report: {path}")
    return 0 if result["flat"] in (True, None) else 1


def format_verdict(result: dict[str, Any]) -> str:
    if result["flat"] is None:
        return f"verdict: none ({result['why']})"
    return "\n".join([
        f"verdict: {'FLAT' if result['flat'] else 'NOT FLAT'} "
        f"(RSS {'flat' if result['rss_flat'] else 'grew'}, connections "
        f"{'flat' if result['connections_flat'] else 'grew'})",
        f"  RSS MiB at minute {result['baseline_minute']}: {result['rss_mib_baseline']}; at minute "
        f"{result['end_minute']}: {result['rss_mib_end']}; growth {result['rss_growth']} (limit {MAX_RSS_GROWTH:.0%})",
        f"  PostgreSQL backends: {result['backends_baseline']} -> {result['backends_end']} "
        f"(max {result['backends_max']}, pool bound {result['pool_bound']}); worker sockets "
        f"{result['sockets_baseline']} -> {result['sockets_end']}, other than pooled connections "
        f"{result['other_sockets'][0]} -> {result['other_sockets'][1]}",
        f"  requests {result['requests']}, errors {result['errors']}",
    ])
