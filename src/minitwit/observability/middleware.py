"""The request observer: request ids, metrics, one access log line per request, the response
headers every answer carries, and unhandled exceptions to the log and to Sentry. Pure ASGI: no
extra task, no Request object per request, one wrapper around ``send`` for all of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from random import getrandbits
from time import perf_counter

from loguru import logger
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from minitwit.observability.logs import log_request
from minitwit.observability.metrics import Metrics, method_label, route_label
from minitwit.observability.sentry import report_exception
from minitwit.security import security_headers

REQUEST_ID = "minitwit.request_id"  # the scope key; error pages read it from there
HEADER = b"x-request-id"
VERSION_HEADER = b"x-minitwit-version"
# An incoming id is kept when it is short and made of characters safe in logs and headers.
VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def incoming_request_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == HEADER:
            return value.decode("ascii") if VALID_REQUEST_ID.fullmatch(value) else None
    return None


def new_request_id() -> str:
    """32 random hex digits. From the process's Mersenne Twister (seeded from os.urandom), not a
    system call per request: an id must be unique, not secret."""
    return f"{getrandbits(128):032x}"  # nosec B311 - an id, not a secret


class RequestObserver:
    """Wraps the whole app, outside Starlette's ServerErrorMiddleware, so that it sees the status
    of every response, the 500 page included, and the exception behind it. It also adds the
    security headers (security.security_headers), so that no other middleware wraps ``send``."""

    def __init__(self, app: ASGIApp, metrics: Metrics | None, version: str, *,
                 security_headers_on: bool = True) -> None:
        self.app = app
        self.metrics = metrics  # None: not counted (`minitwit bench layers` only)
        self.security_headers = security_headers if security_headers_on else lambda headers: ()
        # Encoded once: every response carries it, so a client can tell which replica's build answered.
        self.version_header = (VERSION_HEADER, version.encode("ascii", "replace"))

    def begin(self, scope: Scope) -> tuple[str, tuple[bytes, bytes], float]:
        """Before the request is served: its id (kept from the client when safe, else new),
        recorded in the scope for error pages; the response header that carries it; and its
        start time. Counted in flight until ``finish``."""
        request_id = incoming_request_id(scope["headers"]) or new_request_id()
        scope[REQUEST_ID] = request_id
        if self.metrics is not None:
            self.metrics.in_flight += 1
        return request_id, (HEADER, request_id.encode("ascii")), perf_counter()

    def response_headers(self, headers: Iterable[tuple[bytes, bytes]], id_header: tuple[bytes, bytes]
                         ) -> list[tuple[bytes, bytes]]:
        """A response's headers with the ones every answer carries: security, id and version."""
        return [*headers, *self.security_headers(headers), id_header, self.version_header]

    def finish(self, scope: Scope, request_id: str, status: int, started: float, failure: Exception | None) -> None:
        """After the response (or its failure): the exception reported, the request counted
        and its access line written. ``status`` 0: nothing was sent (a 500 from the server)."""
        seconds = perf_counter() - started
        route, method = route_label(scope), method_label(scope["method"])
        status = status or 500
        if failure is not None:
            self._report(failure, request_id, route, method, scope["path"])
        metrics = self.metrics
        if metrics is not None:
            metrics.in_flight -= 1
            metrics.observe_request(route, method, status, seconds, scope.get("minitwit.simulator_action"))
        # Milliseconds to the microsecond, without round(x, 3)'s conversion through a decimal.
        log_request(
            request_id=request_id, method=method, route=route, path=scope["path"],
            status=status, duration_ms=round(seconds * 1_000_000) / 1000,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id, id_header, started = self.begin(scope)
        response_headers = self.response_headers
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = response_headers(message.get("headers", ()), id_header)
            await send(message)

        failure: Exception | None = None
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as error:
            failure = error
            if not status:  # nothing reached the client: let the server answer and log it
                raise
            # Starlette has sent the error page; the exception ends here, reported once below.
        finally:
            self.finish(scope, request_id, status, started, failure)

    @staticmethod
    def _report(error: Exception, request_id: str, route: str, method: str, path: str) -> None:
        logger.opt(exception=error).error(
            "unhandled exception", request_id=request_id, method=method, route=route, path=path)
        report_exception(error, request_id=request_id, route=route, method=method, path=path)
