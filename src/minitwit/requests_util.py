"""Small helpers for reading requests: query integers, JSON objects, the body size limit."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from minitwit.errors import InvalidInput, MiniTwitError

MAX_BODY_BYTES = 64 * 1024  # far above any form or API body MiniTwit takes; security.RequestGuard enforces it
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


async def read_json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object; InvalidInput otherwise. Its size is capped for every route by
    security.RequestGuard (413 past MAX_BODY_BYTES), before or while it is read."""
    body = await request.body()
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
