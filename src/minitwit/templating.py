"""Jinja2 templates, the original MiniTwit filters, and flash messages kept in the session."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from jinja2 import pass_context
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from minitwit.paths import TEMPLATES_DIR

FLASHES = "_flashes"


def datetimeformat(value: datetime) -> str:
    """The date as the original MiniTwit shows it: ``YYYY-MM-DD @ HH:MM`` (UTC)."""
    return value.astimezone(UTC).strftime("%Y-%m-%d @ %H:%M")


def gravatar(email: str, size: int = 80) -> str:
    """The Gravatar identicon URL for an email address."""
    digest = hashlib.md5(email.strip().lower().encode(), usedforsecurity=False).hexdigest()
    return f"https://www.gravatar.com/avatar/{digest}?d=identicon&s={size}"


def flash(request: Request, message: str) -> None:
    """Shows ``message`` on the next page this browser renders."""
    request.session[FLASHES] = [*request.session.get(FLASHES, []), message]


def pop_flashes(request: Request) -> list[str]:
    return list(request.session.pop(FLASHES, []))


@pass_context
def url_for(context: dict[str, Any], name: str, /, **path_params: Any) -> str:
    """The path of a route, never an absolute URL: links must not carry the request's Host
    header, which a client chooses. Usernames are encoded as one segment (UsernameConvertor)."""
    return str(context["request"].app.url_path_for(name, **path_params))


templates = Jinja2Templates(directory=str(TEMPLATES_DIR))  # autoescapes .html
templates.env.globals["url_for"] = url_for
templates.env.filters["datetimeformat"] = datetimeformat
templates.env.filters["gravatar"] = gravatar


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    context.setdefault("user", request.scope.get("minitwit.user"))
    context.setdefault("build", request.app.state.build)
    context["flashes"] = pop_flashes(request) if "session" in request.scope else []
    return templates.TemplateResponse(request, name, context, status_code=status_code)
