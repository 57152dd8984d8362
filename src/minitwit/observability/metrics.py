"""Prometheus metrics (aioprometheus) and the ``/metrics`` endpoint.

Per request the middleware only bumps plain dict entries and histogram objects (about a
microsecond); the aioprometheus collectors are brought up to date when ``/metrics`` is scraped,
together with the gauges read at that moment (business totals, pool, process).
"""

from __future__ import annotations

import hmac
from bisect import bisect_left

import psutil
from aioprometheus import Counter, Gauge, Histogram, Registry, render
from aioprometheus.histogram import Histogram as AioBuckets
from loguru import logger
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Scope

from minitwit.db import Database
from minitwit.errors import DatabaseUnavailable
from minitwit.version import BuildInfo

# The simulator gives up after 300 ms: buckets on both sides of it tell "slow" from "lost".
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0)
QUERY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
UNMATCHED = "<unmatched>"
DB_UNAVAILABLE_REASONS = ("unreachable", "pool_timeout", "statement_timeout")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_label(scope: Scope) -> str:
    """The route template that served the request, or UNMATCHED for a 404 without a route and
    a 405 (the router records the route whose path matched but whose methods did not)."""
    route = scope.get("route")
    if route is None:
        return UNMATCHED
    methods = getattr(route, "methods", None)
    if methods is not None and scope["method"] not in methods:
        return UNMATCHED
    return str(getattr(route, "path_format", UNMATCHED))


def method_label(method: str) -> str:
    return method if method in METHODS else "OTHER"


def outcome(status: int) -> str:
    """A simulator action's outcome, from its final status."""
    if status < 400:
        return "success"
    if status in (401, 403):
        return "unauthorized"
    return "client_error" if status < 500 else "server_error"


class Buckets(AioBuckets):
    """One histogram series (aioprometheus's value object, which the collector renders), observed
    in one bisect and one list increment. aioprometheus's own ``observe`` adds 1 to every bucket
    at or above the value (17 dict writes per request); the cumulative counts are written into
    ``buckets`` at scrape time instead (``publish``)."""

    def __init__(self, *bounds: float) -> None:
        super().__init__(*bounds)
        self._bounds = list(self.buckets)  # ascending, +Inf last
        self._counts = [0] * len(self._bounds)  # per bucket, not cumulative

    def observe(self, value: float) -> None:
        self._counts[bisect_left(self._bounds, value)] += 1  # the first bound >= value
        self.sum += value
        self.observations += 1

    def publish(self) -> None:
        total = 0
        for bound, count in zip(self._bounds, self._counts, strict=True):
            total += count
            self.buckets[bound] = total


class Metrics:
    """One app's metrics, in a registry of its own (tests build many apps in one process)."""

    def __init__(self, build: BuildInfo) -> None:
        self.registry = registry = Registry()
        # The usual Prometheus idiom: a constant 1 whose labels say which build answers.
        self.build_info = Gauge(
            "minitwit_build_info", "The running build: version and git revision (always 1).", registry=registry)
        self.build_info.set({"version": build.version, "revision": build.revision}, 1)
        self.requests = Counter(
            "minitwit_http_requests_total", "HTTP requests by route template, method and status.",
            registry=registry)
        self.durations = Histogram(
            "minitwit_http_request_duration_seconds", "HTTP request latency by route template and method.",
            registry=registry, buckets=HTTP_BUCKETS)
        self.in_flight_gauge = Gauge(
            "minitwit_http_requests_in_flight", "HTTP requests being served.", registry=registry)
        self.actions = Counter(
            "minitwit_simulator_actions_total", "Simulator API requests by action and outcome.",
            registry=registry)
        self.users = Gauge("minitwit_users", "Registered users.", registry=registry)
        self.messages = Gauge("minitwit_messages", "Messages posted.", registry=registry)
        self.follows = Gauge("minitwit_follows", "Follow pairs.", registry=registry)
        self.latest = Gauge("minitwit_latest", "The simulator's latest action id.", registry=registry)
        self.query_durations = Histogram(
            "minitwit_db_query_duration_seconds", "Database query latency by query name (sql/*.sql).",
            registry=registry, buckets=QUERY_BUCKETS)
        self.pool_size = Gauge("minitwit_db_pool_size", "Open database connections in the pool.", registry=registry)
        self.pool_in_use = Gauge(
            "minitwit_db_connections_in_use", "Pooled database connections in use.", registry=registry)
        self.db_unavailable = Counter(
            "minitwit_db_unavailable_total",
            "Requests answered 503 because the database could not answer, by reason "
            "(unreachable, pool_timeout, statement_timeout).", registry=registry)
        for reason in DB_UNAVAILABLE_REASONS:  # present from the start, so rate() sees the first one
            self.db_unavailable.set({"reason": reason}, 0)
        self.cpu = Counter("process_cpu_seconds_total", "User and system CPU time spent.", registry=registry)
        self.memory = Gauge("process_resident_memory_bytes", "Resident memory size.", registry=registry)
        self.start_time = Gauge(
            "process_start_time_seconds", "Start time of the process since the Unix epoch.", registry=registry)
        self.process = psutil.Process()
        self.in_flight = 0
        self._request_counts: dict[tuple[str, str, int], int] = {}
        self._action_counts: dict[tuple[str, str], int] = {}
        self._latencies: dict[tuple[str, str], Buckets] = {}
        self._query_latencies: dict[str, Buckets] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float, action: str | None) -> None:
        """Counts one finished request (the hot path: no label dicts, no serialisation)."""
        key = (route, method, status)
        self._request_counts[key] = self._request_counts.get(key, 0) + 1
        buckets = self._latencies.get((route, method))
        if buckets is None:
            buckets = self._latencies[(route, method)] = Buckets(*HTTP_BUCKETS)
            # The collector renders this very object, so later observations need no copying.
            self.durations.set_value({"route": route, "method": method}, buckets)
        buckets.observe(seconds)
        if action is not None and route != UNMATCHED:
            pair = (action, outcome(status))
            self._action_counts[pair] = self._action_counts.get(pair, 0) + 1

    def count_db_unavailable(self, reason: str) -> None:
        """One request refused with 503 because the database could not answer (rare: no fast path)."""
        self.db_unavailable.inc({"reason": reason if reason in DB_UNAVAILABLE_REASONS else "unreachable"})

    def observe_query(self, name: str, seconds: float) -> None:
        """The Database(observe=...) hook: one named query took ``seconds``."""
        buckets = self._query_latencies.get(name)
        if buckets is None:
            buckets = self._query_latencies[name] = Buckets(*QUERY_BUCKETS)
            self.query_durations.set_value({"query": name}, buckets)
        buckets.observe(seconds)

    async def collect(self, database: Database) -> None:
        """Brings every collector up to date, for one scrape."""
        for (route, method, status), count in list(self._request_counts.items()):
            self.requests.set({"route": route, "method": method, "status": str(status)}, count)
        for (action, result), count in list(self._action_counts.items()):
            self.actions.set({"action": action, "outcome": result}, count)
        for series in [*self._latencies.values(), *self._query_latencies.values()]:
            series.publish()
        self.in_flight_gauge.set({}, self.in_flight)
        size, in_use = database.pool_stats()
        self.pool_size.set({}, size)
        self.pool_in_use.set({}, in_use)
        cpu = self.process.cpu_times()
        self.cpu.set({}, cpu.user + cpu.system)
        self.memory.set({}, self.process.memory_info().rss)
        self.start_time.set({}, self.process.create_time())
        try:
            async with database.session() as db:
                totals = await db.fetch_one("business_totals")
        except DatabaseUnavailable as error:  # expected during an outage: one line, no traceback
            logger.warning("business totals unavailable for /metrics: {}", error.detail or error.reason)
            return
        except Exception:  # a scrape still reports the rest; the log says why
            logger.opt(exception=True).warning("business totals unavailable for /metrics")
            return
        if totals is None:  # never: an aggregate without GROUP BY yields one row
            return
        self.users.set({}, int(totals["users"]))
        self.messages.set({}, int(totals["messages"]))
        self.follows.set({}, int(totals["follows"]))
        self.latest.set({}, int(totals["latest"]) if totals["latest"] is not None else -1)

    def render(self) -> bytes:
        body, _ = render(self.registry, [])
        return body


def bearer_accepts(authorization: str | None, token: str) -> bool:
    """Whether the Authorization header carries exactly ``Bearer <token>`` (constant time)."""
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus text format; with METRICS_TOKEN set, only for ``Authorization: Bearer <token>``."""
    token = request.app.state.settings.metrics_token
    if token and not bearer_accepts(request.headers.get("authorization"), token):
        return PlainTextResponse(
            "Unauthorized\n", status_code=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    metrics: Metrics = request.app.state.metrics
    await metrics.collect(request.app.state.db)
    return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
