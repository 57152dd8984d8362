"""Small helpers for reading requests: query integers, JSON objects, the body's size, time and
nesting limits."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from minitwit.errors import InvalidInput, MiniTwitError

MAX_BODY_BYTES = 64 * 1024  # far above any form or API body MiniTwit takes; security.RequestGuard enforces it
BODY_READ_TIMEOUT_SECONDS = 10.0  # a client that cannot send 64 KiB in 10 s is not a browser or the simulator
MAX_JSON_DEPTH = 32  # the API's bodies are flat objects (depth 1)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
BODILESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
JSON_BRACKETS = re.compile(rb"[\[\]{}]")


class BodyTooLarge(MiniTwitError):
    status_code = 413


class BodyTooSlow(MiniTwitError):
    status_code = 408


async def read_body(request: Request, timeout: float = BODY_READ_TIMEOUT_SECONDS) -> None:
    """Reads the whole body into the request (Starlette keeps it for ``body()``/``form()``) within
    ``timeout`` seconds, or BodyTooSlow. The API and web wrappers call this *before* they take a
    database connection, so a client that drips its body holds a socket, never a connection."""
    if request.method in BODILESS_METHODS:
        return  # their handlers never read a body; a GET that sends one is not waited for
    task = asyncio.current_task()
    assert task is not None
    watch = BodyWatch.of(asyncio.get_running_loop())
    watch.reading[task] = watch.loop.time() + timeout
    try:
        # Kept where Starlette's body(), json(), form() and stream() look first; read here in a
        # plain loop rather than through body()'s async generator, a dozen objects a request.
        request._body = await whole_body(request.receive)
    except asyncio.CancelledError:
        if not watch.forget(task):
            raise  # cancelled by someone else (a shutdown): not ours to turn into a 408
        raise BodyTooSlow(f"The request body must arrive within {timeout:g} seconds") from None
    finally:
        watch.reading.pop(task, None)
        watch.forget(task)  # a deadline that passed as the body came in (asyncio.timeout's race too)


async def whole_body(receive: Receive) -> bytes:
    """Every chunk of the request's body, as Starlette's ``Request.body()`` reads it."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class BodyWatch:
    """The time limit on reading bodies: one timer per event loop, every WATCH_EVERY_SECONDS
    while bodies are being read, cancels the reads past their deadline. A timer per request
    (``asyncio.timeout``) cost about 9 µs a POST, nearly always for a body already there
    (docs/performance.md); a deadline here costs a dictionary entry. A read is cancelled
    between its deadline and WATCH_EVERY_SECONDS later."""

    WATCH_EVERY_SECONDS = 0.25
    _by_loop: dict[asyncio.AbstractEventLoop, BodyWatch] = {}  # while its loop has reads in progress

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.reading: dict[asyncio.Task, float] = {}  # task -> deadline (loop time)
        self.expired: set[asyncio.Task] = set()  # cancelled here, not yet told
        self._armed = False

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> BodyWatch:
        watch = cls._by_loop.get(loop)
        if watch is None:
            watch = cls._by_loop[loop] = cls(loop)
        if not watch._armed:
            watch._armed = True
            loop.call_later(cls.WATCH_EVERY_SECONDS, watch._sweep)
        return watch

    def forget(self, task: asyncio.Task) -> bool:
        """Whether this watch cancelled ``task``; if so, the cancellation is taken back."""
        if task not in self.expired:
            return False
        self.expired.discard(task)
        task.uncancel()
        return True

    def _sweep(self) -> None:
        now = self.loop.time()
        for task, deadline in list(self.reading.items()):
            if now >= deadline:
                del self.reading[task]
                self.expired.add(task)
                task.cancel()
        if self.reading:
            self.loop.call_later(self.WATCH_EVERY_SECONDS, self._sweep)
        else:  # the next read starts a new watch; a finished loop keeps none
            self._armed = False
            BodyWatch._by_loop.pop(self.loop, None)


def json_depth_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``body`` nests arrays/objects deeper than ``limit``, found by a scan of the
    brackets outside strings: no recursion, so 100,000 levels cost a regex pass, not a crash."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # the usual case: a flat object has one bracket
    depth = 0
    for bracket in JSON_BRACKETS.findall(JSON_STRING.sub(b"", body)):
        if bracket in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def client_address(request: Request) -> str:
    """The peer's address; behind a proxy, uvicorn's --proxy-headers puts the real one here."""
    return request.client.host if request.client else ""


def header_value(request: Request, name: bytes) -> str | None:
    """``request.headers.get(name)`` (``name`` in lower case) without building Starlette's
    Headers object: the simulator API reads one header per request."""
    for key, value in request.scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def query_value(request: Request, name: str) -> str | None:
    """A query parameter as Starlette's ``request.query_params.get`` gives it (the last one of
    that name), without building the whole multi-dict when nothing in the query needs decoding:
    every simulator request reads one or two of them (docs/performance.md)."""
    query: bytes = request.scope["query_string"]
    if b"%" in query or b"+" in query or b";" in query:
        return request.query_params.get(name)
    found = None
    prefix = name.encode() + b"="
    for pair in query.split(b"&"):
        if pair.startswith(prefix):
            found = pair[len(prefix):]
        elif pair == prefix[:-1]:
            found = b""
    return None if found is None else found.decode("latin-1")


def query_int(request: Request, name: str, default: int | None = None) -> int | None:
    """An integer query parameter; absent, malformed or out of bigint range means ``default``."""
    raw = query_value(request, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        return default
    return value if INT64_MIN <= value <= INT64_MAX else default


async def read_json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object; InvalidInput otherwise. Its size is capped for every route by
    security.RequestGuard (413 past MAX_BODY_BYTES), before or while it is read."""
    body = await request.body()
    if json_depth_exceeds(body):
        raise InvalidInput(f"The request body may nest at most {MAX_JSON_DEPTH} levels")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("The request body must be JSON") from None
    if not isinstance(data, dict):
        raise InvalidInput("The request body must be a JSON object")
    return data


def text_field(data: dict[str, Any], key: str) -> str:
    """A string field of a JSON object; missing, null or not a string reads as empty."""
    value = data.get(key)
    if not isinstance(value, str):
        return ""
    if not value.isascii():
        try:  # JSON can carry lone surrogates ("\\ud800"), which no database or hash can take
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(f'"{key}" must be valid Unicode text') from None
    return value
