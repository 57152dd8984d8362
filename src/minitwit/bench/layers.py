"""``minitwit bench layers``: what each optional layer costs a simulator request.

The scenario is replayed against a fresh ``minitwit serve`` as shipped, then with one layer
changed at a time (the access log off, metrics off, the security middleware off, the session
middleware on the API routes too, the API through Starlette's router instead of its lane, Sentry
on with a DSN to a sink in this process), and the table gives the app's CPU per request (its
processes, PostgreSQL apart), that CPU per unit of the load client's own (the control: the
machine's speed of the moment moves both), throughput and p99 for each. ``--baseline-command``
adds any other server, measured the same way in the same run (e.g. a minimal implementation of
the API, to see what the framework costs). ``--rounds`` repeats the whole set in turn, so that a
drifting machine hurts every variant alike; medians are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import statistics
import subprocess  # nosec B404 - starts this package's server or the operator's own command
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from minitwit.bench import replay
from minitwit.bench.server import BenchServer, free_port, tree_cpu_seconds
from minitwit.bench.stats import load_report
from minitwit.paths import scenario_path

SHIPPED = "as shipped"


def variants(sentry_dsn: str) -> list[tuple[str, dict[str, str]]]:
    """(name, environment) of each run: the app as shipped, then one layer changed."""
    return [
        (SHIPPED, {}),
        ("access log off (LOG_LEVEL=WARNING)", {"LOG_LEVEL": "WARNING"}),
        ("metrics off", {"MINITWIT_BENCH_VARIANT": "no-metrics"}),
        ("security middleware and headers off", {"MINITWIT_BENCH_VARIANT": "no-security"}),
        ("session middleware on API routes too", {"MINITWIT_BENCH_VARIANT": "sessions-on-api"}),
        ("API through Starlette's router (no lane)", {"MINITWIT_BENCH_VARIANT": "api-through-router"}),
        ("Sentry on (DSN to an in-process sink)", {"SENTRY_DSN": sentry_dsn}),
    ]


class _Sink(BaseHTTPRequestHandler):
    """Accepts whatever Sentry's SDK sends (envelopes) and counts it."""

    received = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        type(self).received += 1
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def sentry_sink() -> Iterator[str]:
    """A DSN whose ingest endpoint is an HTTP server in this process, on 127.0.0.1."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://bench-public-key@127.0.0.1:{server.server_address[1]}/1"
    finally:
        server.shutdown()
        server.server_close()


class BaselineServer:
    """The operator's command (``{port}`` replaced), in a session of its own; its CPU is that of
    its process tree. Start anything it needs beside it (a database) beforehand."""

    def __init__(self, command: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = command.replace("{port}", str(self.port))
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> BaselineServer:
        self.process = subprocess.Popen(  # noqa: S602  # nosec B602 - the operator's own command line
            self.command, shell=True, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the baseline command exited ({self.process.returncode}): {self.command}")
            try:
                urllib.request.urlopen(self.url + "/latest", timeout=1)  # nosec B310 - loopback
                return self
            except urllib.error.HTTPError:
                return self  # any HTTP answer: it is up
            except OSError:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"the baseline command did not answer on {self.url} within 120 s")

    def cpu(self) -> float:
        assert self.process is not None
        return tree_cpu_seconds([self.process.pid])

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


def measure(server: BenchServer | BaselineServer, actions: list[replay.Action], concurrency: int) -> dict[str, object]:
    """One replay against ``server``: throughput, p99, failures and the app's CPU per request.
    The requests are planned anew for each run: each carries events that its run sets."""
    requests = replay.plan(actions, 1, False, 1)
    app_cpu = (lambda: server.cpu().app_s) if isinstance(server, BenchServer) else server.cpu
    # The client's CPU is the control (docs/performance.md, "Reading a run"): this thread's only,
    # so that the Sentry sink's thread in this process does not count.
    before, client_before = app_cpu(), time.thread_time()
    outcomes, wall = asyncio.run(replay.run(server.url, requests, concurrency))
    app_s, client_s = app_cpu() - before, time.thread_time() - client_before
    report = load_report(outcomes, wall, replay.SLOW_MS)
    return {"rps": report["throughput_rps"], "p99_ms": report["latency_ms"]["p99"],  # type: ignore[index]
            "failed": report["failed"], "over_300ms": report["slow_over_300ms"],
            "app_ms_per_request": 1000 * app_s / max(1, len(outcomes)),
            "app_per_client_cpu": app_s / max(1e-9, client_s)}


def median_of(runs: list[dict[str, object]], key: str) -> float:
    return float(statistics.median(float(run[key]) for run in runs))  # type: ignore[arg-type]


def format_table(results: dict[str, list[dict[str, object]]], concurrency: int, workers: int) -> str:
    shipped = median_of(results[SHIPPED], "app_ms_per_request")
    shipped_ratio = median_of(results[SHIPPED], "app_per_client_cpu")
    lines = [f"{'variant':42} {'app ms/req':>10} {'vs shipped':>10} {'app/client':>10} {'vs shipped':>10} "
             f"{'req/s':>7} {'p99 ms':>7} {'failed':>6} {'>300ms':>6}",
             "-" * 116]
    for name, runs in results.items():
        cpu, ratio = median_of(runs, "app_ms_per_request"), median_of(runs, "app_per_client_cpu")
        lines.append(f"{name:42} {cpu:>10.3f} {cpu - shipped:>+10.3f} {ratio:>10.3f} "
                     f"{100 * (ratio / shipped_ratio - 1):>+9.1f}% {median_of(runs, 'rps'):>7.1f} "
                     f"{median_of(runs, 'p99_ms'):>7.1f} {sum(int(r['failed']) for r in runs):>6} "  # type: ignore[call-overload]
                     f"{sum(int(r['over_300ms']) for r in runs):>6}")  # type: ignore[call-overload]
    lines.append(f"(medians of {len(results[SHIPPED])} round(s); {concurrency} in flight; {workers} workers; "
                 "app ms/req: CPU of the server's own processes, its PostgreSQL apart; app/client: that CPU "
                 "per unit of the load client's, the figure to compare, since the machine's speed moves both)")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--csv", type=Path, default=scenario_path(), help="scenario file (default: %(default)s)")
    parser.add_argument("--limit", type=int, help="replay only the first N actions (default: all)")
    parser.add_argument("-c", "--concurrency", type=int, default=8, help="requests in flight (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of each server (default 2)")
    parser.add_argument("--rounds", type=int, default=1, help="times the whole set is run, in turn (default 1)")
    parser.add_argument("--baseline-command", metavar="CMD",
                        help="another server to measure beside the variants; {port} is replaced")
    parser.add_argument("--baseline-name", metavar="NAME",
                        help="the baseline's row in the table (default: the file name of the command's first word)")
    parser.add_argument("--json", type=Path, help="report file (default bench-results/layers-<time>.json)")


def main(args: argparse.Namespace) -> int:
    actions = replay.read_scenario(args.csv, args.limit)
    request_count = sum(1 for _ in replay.plan(actions, 1, False, 1))
    results: dict[str, list[dict[str, object]]] = {}
    with sentry_sink() as dsn:
        for round_number in range(1, args.rounds + 1):
            for name, env in variants(dsn):
                with BenchServer(workers=args.workers, env=env) as server:
                    results.setdefault(name, []).append(measure(server, actions, args.concurrency))
                print(f"round {round_number}: {name}: {results[name][-1]}", flush=True)
            if args.baseline_command:
                name = f"baseline: {args.baseline_name or Path(shlex.split(args.baseline_command)[0]).name}"
                with BaselineServer(args.baseline_command) as baseline:
                    results.setdefault(name, []).append(measure(baseline, actions, args.concurrency))
                print(f"round {round_number}: {name}: {results[name][-1]}", flush=True)
    print()
    print(f"{request_count} requests per run ({args.csv.name}{f', first {args.limit} actions' if args.limit else ''})")
    print(format_table(results, args.concurrency, args.workers))
    path = args.json or Path("bench-results") / time.strftime("layers-%Y%m%d-%H%M%S.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"requests": request_count, "concurrency": args.concurrency,
                                "workers": args.workers, "results": results}, indent=2) + "\n")
    print(f"report: {path}")
    return 0
