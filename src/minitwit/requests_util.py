"""Small helpers for reading requests: query integers, bounded bodies, JSON objects."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from minitwit.errors import InvalidInput, MiniTwitError

MAX_BODY_BYTES = 64 * 1024  # far above any form or API body MiniTwit takes
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class BodyTooLarge(MiniTwitError):
    status_code = 413


def query_int(request: Request, name: str, default: int | None = None) -> int | None:
    """An integer query parameter; absent, malformed or out of bigint range means ``default``."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        return default
    return value if INT64_MIN <= value <= INT64_MAX else default


async def read_body(request: Request) -> bytes:
    """The request body, refused with 413 past MAX_BODY_BYTES without reading it all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BodyTooLarge(f"The request body may have at most {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge(f"The request body may have at most {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body
    return body


async def read_json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object; InvalidInput otherwise."""
    body = await read_body(request)
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
