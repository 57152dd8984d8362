"""``minitwit bench sessions``: what the server-side session lookup costs a web page.

A signed-in web request looks its session up in PostgreSQL (minitwit.sessions, one indexed
lookup); an anonymous one and the simulator API do not. This serves a fresh server, signs one
user in, and times GET /public signed in and anonymous, interleaved so that noise from other
work on the machine falls on both alike, plus GET /latest (the API) for reference. It prints
figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import secrets
import statistics
import time
import urllib.parse
import urllib.request

from minitwit.bench.server import BenchServer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--requests", type=int, default=500, help="requests of each kind (default 500)")


def _timed(opener: urllib.request.OpenerDirector, url: str) -> float:
    started = time.perf_counter()
    with opener.open(url, timeout=10) as response:  # nosec B310 - the benchmark's own loopback server
        response.read()
    return time.perf_counter() - started


def _sign_in(url: str) -> urllib.request.OpenerDirector:
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    password = secrets.token_urlsafe(12)  # a throwaway account on a throwaway server
    account = {"username": "bench", "email": "bench@example.com", "password": password, "password2": password}
    opener.open(url + "/register", urllib.parse.urlencode(account).encode(), timeout=30).read()  # nosec B310
    form = urllib.parse.urlencode({"username": "bench", "password": password}).encode()
    page = opener.open(url + "/login", form, timeout=30).read().decode()  # nosec B310
    if "sign out" not in page:
        raise RuntimeError("the benchmark could not sign in")
    return opener


def _line(name: str, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    return (f"{name:<22} median {statistics.median(ordered) * 1000:7.3f} ms   p95 {p95 * 1000:7.3f} ms   "
            f"mean {statistics.fmean(ordered) * 1000:7.3f} ms")


def main(args: argparse.Namespace) -> int:
    count = args.requests
    with BenchServer(workers=1) as server:
        signed_in = _sign_in(server.url)
        anonymous = urllib.request.build_opener()
        for _ in range(50):  # warm both paths (prepared statements, templates)
            _timed(signed_in, server.url + "/public")
            _timed(anonymous, server.url + "/public")
        times: dict[str, list[float]] = {"/public signed in": [], "/public anonymous": [], "/latest (API)": []}
        for _ in range(count):
            times["/public signed in"].append(_timed(signed_in, server.url + "/public"))
            times["/public anonymous"].append(_timed(anonymous, server.url + "/public"))
            times["/latest (API)"].append(_timed(anonymous, server.url + "/latest"))
    print(f"session lookup cost: {count} requests of each kind, interleaved, 1 worker")
    for name, seconds in times.items():
        print(_line(name, seconds))
    difference = statistics.median(times["/public signed in"]) - statistics.median(times["/public anonymous"])
    print(f"signed in minus anonymous (median): {difference * 1000:+.3f} ms "
          "(the session lookup, plus the signed-in page's few extra lines)")
    return 0
