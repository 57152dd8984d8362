"""``minitwit bench scale``: does a read cost more when the database is bigger?

Two servers on one embedded PostgreSQL, each with a database of its own, seeded alike (10,000
users, 200,000 follow pairs; see minitwit.bench.seed) except for the number of messages: 10,000
in one, 1,000,000 in the other. The five timeline reads are then timed on both, one request at
a time, alternating between the two in small batches so that whatever else the machine does
hits both alike. The verdict: the p99 at the large size stays within 1.5 x the small one's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from pathlib import Path

import psycopg

from minitwit import migrations
from minitwit.bench import seed
from minitwit.bench.server import BenchServer
from minitwit.bench.stats import format_table, latency_summary
from minitwit.embedded import EmbeddedPostgres
from minitwit.passwords import hash_password_sync

SMALL_MESSAGES = seed.ACTIVE_USERS * seed.PER_ACTIVE  # 10,000
MAX_RATIO = 1.5
ENDPOINTS = ("/public", "/<user>", "/ (home, 200 followed)", "/msgs?no=100", "/msgs/<user>")
AUTH = {"Authorization": "Basic c2ltdWxhdG9yOnN1cGVyX3NhZmUh"}  # the development default


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--messages", type=int, default=1_000_000, help="messages at the large size")
    parser.add_argument("--users", type=int, default=10_000, help="users (both sizes)")
    parser.add_argument("--follows", type=int, default=200_000, help="follow pairs (both sizes)")
    parser.add_argument("--requests", type=int, default=1000, help="timed requests per endpoint and size")
    parser.add_argument("--batch", type=int, default=25, help="requests in a row before switching size")
    parser.add_argument("--json", type=Path, help="report file (default bench-results/scale-<time>.json)")


def path_for(endpoint: str, rng: random.Random) -> str:
    user = f"bench{rng.randint(1, seed.ACTIVE_USERS)}"
    return {"/public": "/public", "/<user>": f"/{user}", "/ (home, 200 followed)": "/",
            "/msgs?no=100": "/msgs?no=100", "/msgs/<user>": f"/msgs/{user}?no=100"}[endpoint]


async def measure(urls: dict[str, str], requests: int, batch: int) -> dict[str, dict[str, list[float]]]:
    """Latencies in ms per endpoint and size; sizes alternate every ``batch`` requests."""
    import aiohttp

    times: dict[str, dict[str, list[float]]] = {e: {size: [] for size in urls} for e in ENDPOINTS}
    sessions = {size: aiohttp.ClientSession(url, headers=AUTH, cookie_jar=aiohttp.CookieJar(unsafe=True))
                for size, url in urls.items()}
    try:
        for size, session in sessions.items():  # sign in as the user whose home timeline is read
            form = {"username": seed.HOME_USER, "password": seed.BENCH_PASSWORD}
            async with session.post("/login", data=form, allow_redirects=False) as response:
                if response.status != 302:
                    raise RuntimeError(f"{size}: signing in as {seed.HOME_USER} answered {response.status}")
        for endpoint in ENDPOINTS:
            rng = random.Random(7)  # nosec B311 - a reproducible load pattern, not a secret
            for session in sessions.values():  # warm-up, untimed
                for _ in range(batch):
                    async with session.get(path_for(endpoint, rng)) as response:
                        await response.read()
            for _ in range(0, requests, batch):
                for size, session in sessions.items():
                    for _ in range(batch):
                        path = path_for(endpoint, rng)
                        started = time.perf_counter()
                        async with session.get(path, allow_redirects=False) as response:
                            await response.read()
                        times[endpoint][size].append((time.perf_counter() - started) * 1000)
                        if response.status != 200:
                            raise RuntimeError(f"{size}: GET {path} answered {response.status}")
    finally:
        for session in sessions.values():
            await session.close()
    return times


def create_databases(admin_url: str, names: list[str]) -> None:
    with psycopg.connect(migrations.libpq_url(admin_url), autocommit=True) as admin:
        for name in names:
            admin.execute(f'CREATE DATABASE "{name}"')


def run(args: argparse.Namespace, workdir: Path) -> dict:
    shape = seed.Shape(users=args.users, follows=args.follows)
    embedded = EmbeddedPostgres(workdir)
    embedded.start()
    try:
        create_databases(embedded.url("postgres"), ["minitwit_small", "minitwit_large"])
        urls = {size: embedded.url(f"minitwit_{size}") for size in ("small", "large")}
        with BenchServer(database_url=urls["small"]) as small, BenchServer(database_url=urls["large"]) as large:
            seeding = {}
            pw_hash = hash_password_sync(seed.BENCH_PASSWORD)
            for size, url in urls.items():
                started = time.perf_counter()
                asyncio.run(seed.seed_people(url, shape, pw_hash))
                asyncio.run(seed.seed_messages(url, shape, 0, SMALL_MESSAGES))
                seeding[f"{size}: {args.users} users, {args.follows} follows, {SMALL_MESSAGES} messages"] = \
                    time.perf_counter() - started
            started = time.perf_counter()
            asyncio.run(seed.seed_messages(urls["large"], shape, SMALL_MESSAGES, args.messages - SMALL_MESSAGES))
            seeding[f"large: {args.messages - SMALL_MESSAGES} more messages + ANALYZE"] = time.perf_counter() - started
            for what, seconds in seeding.items():
                print(f"seeded {what} in {seconds:.1f} s")
            times = asyncio.run(measure({"small": small.url, "large": large.url}, args.requests, args.batch))
    finally:
        embedded.stop()
    results = {}
    for endpoint, by_size in times.items():
        small_figures, large_figures = latency_summary(by_size["small"]), latency_summary(by_size["large"])
        ratio = (large_figures["p99"] or 0) / (small_figures["p99"] or 1)
        results[endpoint] = {"small": small_figures, "large": large_figures, "p99_ratio": round(ratio, 2),
                             "ok": ratio <= MAX_RATIO}
    return {"messages": {"small": SMALL_MESSAGES, "large": args.messages}, "users": args.users,
            "follows": args.follows, "requests_per_endpoint_and_size": args.requests,
            "seeding_s": {k: round(v, 2) for k, v in seeding.items()}, "endpoints": results,
            "max_ratio": MAX_RATIO, "ok": all(r["ok"] for r in results.values())}


def format_report(report: dict) -> str:
    small, large = (f"{n:,}" for n in (report["messages"]["small"], report["messages"]["large"]))
    header = ["endpoint", f"p50 {small}", f"p99 {small}", f"p50 {large}", f"p99 {large}", "p99 ratio", "ok"]
    rows = [[e, r["small"]["p50"], r["small"]["p99"], r["large"]["p50"], r["large"]["p99"], r["p99_ratio"],
             "yes" if r["ok"] else "NO"] for e, r in report["endpoints"].items()]
    verdict = "within" if report["ok"] else "NOT within"
    return (format_table(header, rows) + f"\nms, {report['requests_per_endpoint_and_size']} requests each, one at a "
            f"time; p99 at {report['messages']['large']:,} messages {verdict} {report['max_ratio']} x "
            f"the p99 at {report['messages']['small']:,}")


def main(args: argparse.Namespace) -> int:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="minitwit-scale-") as workdir:
        report = run(args, Path(workdir))
    print(format_report(report))
    path = args.json or Path("bench-results") / time.strftime("scale-%Y%m%d-%H%M%S.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report: {path}")
    return 0 if report["ok"] else 1
