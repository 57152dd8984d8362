"""The simulator API's lane: its six routes served before Starlette's middleware and router,
and before the request observer's ``send`` wrapper.

Nearly every request MiniTwit serves is the simulator's, and each one went through Starlette's
ServerErrorMiddleware, the RequestGuard, the session middleware (which lets the API by), the
ExceptionMiddleware (a Request and a ``send`` wrapper of its own) and a router that tries its
routes' regular expressions in turn: about a sixth of the app's CPU per request, for checks
whose answer for a simulator request is nearly always "go on" (docs/performance.md).

``ApiLane`` answers such a request itself, with the same handlers (the ``api`` module), the same
route objects (so metrics and logs label it alike) and the same error rendering (the app's
handlers). The request observer's work (id, headers, metrics, access line) is done here through
the observer's own methods, and the response goes out in two messages built here. It takes the
lane only when the full stack would have let the request through to its route: a known host, no
browser's cross-site signal, a declared body within the cap, no root path. Anything else,
including every refusal and every other route, goes through the observer and the full stack,
which decide as they always have. tests/test_api_lane.py compares both paths answer by answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from minitwit.api import Endpoint
from minitwit.errors import MiniTwitError
from minitwit.observability.middleware import RequestObserver
from minitwit.security import declared_length_allowed, guarded_headers, host_allowed, routing_path_of

ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]
ServerErrorPage = Callable[[Request, Exception], Awaitable[Response]]

# The lane's routes by name (app.routes): whole paths, and paths that end in one username.
WHOLE_PATHS = {("GET", "/msgs"): "api_messages", ("GET", "/latest"): "api_latest"}
USER_PATHS = {
    ("GET", "/msgs/"): "api_user_messages",
    ("POST", "/msgs/"): "api_post_message",
    ("GET", "/fllws/"): "api_follows",
    ("POST", "/fllws/"): "api_change_follow",
}


class ApiLane:
    """The app's stack behind a lane for the simulator's routes (see the module docstring)."""

    def __init__(self, observer: RequestObserver, routes: Iterable[BaseRoute], *, on_error: ErrorHandler,
                 on_server_error: ServerErrorPage, max_body_bytes: int, allowed_hosts: Iterable[str]) -> None:
        self.app: ASGIApp = observer  # the full stack, observed
        self.observer = observer
        by_name = {route.name: route for route in routes if isinstance(route, Route)}
        self.whole = {key: self._lane(by_name[name]) for key, name in WHOLE_PATHS.items()}
        self.by_user = {key: self._lane(by_name[name]) for key, name in USER_PATHS.items()}
        self.on_error = on_error
        self.on_server_error = on_server_error
        self.max_body_bytes = max_body_bytes
        self.allowed_hosts = frozenset(allowed_hosts)

    @staticmethod
    def _lane(route: Route) -> tuple[Route, Callable[[Request], Awaitable[Response]]]:
        endpoint = route.endpoint
        assert isinstance(endpoint, Endpoint), f"{route.name} is not a simulator endpoint"
        return route, endpoint.endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        path = routing_path_of(scope)  # as the RequestGuard has it
        username = None
        lane = self.whole.get((method, path))
        if lane is None:
            prefix = "/msgs/" if path.startswith("/msgs/") else "/fllws/" if path.startswith("/fllws/") else ""
            username = path[len(prefix):]
            lane = self.by_user.get((method, prefix)) if username and "/" not in username else None
            if lane is None or not self._let_through(scope, method):
                await self.app(scope, receive, send)
                return
            if "%" in username:
                username = unquote(username)  # the route's UsernameConvertor
        elif not self._let_through(scope, method):
            await self.app(scope, receive, send)
            return
        route, endpoint = lane
        scope["path"] = path
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {} if username is None else {"username": username}
        await self._serve(scope, receive, send, endpoint)

    async def _serve(self, scope: Scope, receive: Receive, send: Send,
                     endpoint: Callable[[Request], Awaitable[Response]]) -> None:
        """The request observer's work (its id, headers, metrics and access line, through its
        own methods) and the endpoint's, in one frame: the response goes out in two messages
        built here rather than through the observer's ``send`` wrapper and ``Response.__call__``."""
        observer = self.observer
        request_id, id_header, started = observer.begin(scope)
        status = 0
        failure: Exception | None = None
        try:
            request = Request(scope, receive, send)
            try:
                response = await endpoint(request)
            except MiniTwitError as error:
                response = await self.on_error(request, error)
            except Exception as error:
                # What Starlette's ServerErrorMiddleware does: the 500 page; the observer's
                # finish below logs and reports the exception.
                failure = error
                response = await self.on_server_error(request, error)
            if type(response).__call__ is not Response.__call__ or response.background is not None:
                raise TypeError(f"the API lane sends whole bodies only, not a {type(response).__name__}")
            status = response.status_code
            await send({"type": "http.response.start", "status": status,
                        "headers": observer.response_headers(response.raw_headers, id_header)})
            await send({"type": "http.response.body", "body": response.body})
        except Exception as error:
            failure = error
            if not status:  # nothing reached the client: let the server answer and log it
                raise
        finally:
            observer.finish(scope, request_id, status, started, failure)

    def _let_through(self, scope: Scope, method: str) -> bool:
        """Whether the full stack would let this request reach its route unchanged: the
        RequestGuard's checks (host, cross-site, body size) with every doubt sent to it."""
        sec_fetch_site, origin, host, content_length = guarded_headers(scope["headers"])
        if sec_fetch_site is not None or origin is not None:
            return False  # a browser's request: the guard judges where it comes from
        if self.allowed_hosts and not host_allowed(host, self.allowed_hosts):
            return False
        if content_length is None:
            return method == "GET"  # a body without a declared length is counted by the guard
        return declared_length_allowed(content_length, self.max_body_bytes)
