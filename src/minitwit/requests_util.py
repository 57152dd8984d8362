"""Small helpers for reading requests: query integers, JSON objects, the body's size, time and
nesting limits."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from starlette.requests import Request

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
    try:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for runs the read in a task of its
        # own, a cost every POST would pay although its body has nearly always arrived already.
        async with asyncio.timeout(timeout):
            await request.body()
    except TimeoutError:
        raise BodyTooSlow(f"The request body must arrive within {timeout:g} seconds") from None


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
