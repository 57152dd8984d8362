"""The Starlette application: route table, middleware, start-up and shutdown, error rendering."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from loguru import logger
from starlette.applications import Starlette
from starlette.convertors import register_url_convertor
from starlette.datastructures import State
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from minitwit import api, observability, openapi, operations, sessions, web
from minitwit.api import SimulatorCredential
from minitwit.api_lane import ApiLane
from minitwit.db import Database
from minitwit.errors import DatabaseUnavailable, MiniTwitError
from minitwit.http_protocol import BoundedHttpToolsProtocol
from minitwit.observability import RequestObserver
from minitwit.observability.logs import flush_access_lines
from minitwit.paths import STATIC_DIR
from minitwit.requests_util import MAX_BODY_BYTES
from minitwit.security import RequestGuard, UsernameConvertor
from minitwit.settings import Settings
from minitwit.templating import render
from minitwit.version import build_info

# The simulator API's paths (docs/api.md): its own, not /register, which the sign-up form shares.
# Whole paths and whole segments: "/msgsfoo" and "/fllws" are the pages of users of those names.
API_PATHS = frozenset({"/msgs", "/latest"})
API_PATH_PREFIXES = ("/msgs/", "/fllws/")
register_url_convertor("username", UsernameConvertor())  # type: ignore[arg-type]


async def register(request: Request) -> Response:
    """POST /register is the simulator's when the body is JSON, the sign-up form's otherwise."""
    if request.method == "POST" and request.headers.get("content-type", "").startswith("application/json"):
        return await api.register(request)
    return await web.register(request)


# The simulator's routes first: they are most of the traffic, and the router tries routes in order.
routes = [
    Route("/msgs/{username:username}", api.Endpoint(api.post_message), methods=["POST"], name="api_post_message"),
    Route("/fllws/{username:username}", api.Endpoint(api.change_follow), methods=["POST"], name="api_change_follow"),
    Route("/msgs/{username:username}", api.Endpoint(api.user_messages), methods=["GET"], name="api_user_messages"),
    Route("/fllws/{username:username}", api.Endpoint(api.followed), methods=["GET"], name="api_follows"),
    Route("/msgs", api.Endpoint(api.messages), methods=["GET"], name="api_messages"),
    Route("/latest", api.Endpoint(api.get_latest), methods=["GET"], name="api_latest"),
    Route("/register", register, methods=["GET", "POST"], name="register"),
    Route("/", web.timeline, name="timeline"),
    Route("/public", web.public_timeline, name="public_timeline"),
    Route("/add_message", web.add_message, methods=["POST"], name="add_message"),
    Route("/login", web.login, methods=["GET", "POST"], name="login"),
    Route("/logout", web.logout, methods=["GET", "POST"], name="logout"),
    Route("/openapi.json", openapi.document, methods=["GET"], name="openapi"),
    Route("/health", operations.health, methods=["GET"], name="health"),
    Route("/ready", operations.ready, methods=["GET"], name="ready"),
    Route("/metrics", observability.metrics_endpoint, methods=["GET"], name="metrics"),
    Mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static"),
    Route("/{username:username}/follow", web.follow_user, methods=["GET", "POST"], name="follow_user"),
    Route("/{username:username}/unfollow", web.unfollow_user, methods=["GET", "POST"], name="unfollow_user"),
    Route("/{username:username}", web.user_timeline, methods=["GET"], name="user_timeline"),
]


def is_simulator_path(path: str) -> bool:
    """Whether ``path`` is the simulator API's: its errors are JSON and it carries no session."""
    return path in API_PATHS or path.startswith(API_PATH_PREFIXES)


class WebSessionMiddleware(SessionMiddleware):
    """Starlette's signed session cookie, for the web pages only: the simulator API carries no
    cookie and its handlers never read a session, so its requests skip the cookie parsing and
    the extra ``send`` wrapper (docs/performance.md)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_simulator_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def wants_json(request: Request) -> bool:
    return (
        bool(request.scope.get("minitwit.api"))
        or is_simulator_path(request.scope["path"])
        or request.headers.get("content-type", "").startswith("application/json")  # refused before routing
    )


def error_response(request: Request, status_code: int, message: str) -> Response:
    """The one place an error becomes a JSON body (API) or an HTML page (web). A server error
    shows the request id, which finds its log lines and its Sentry event."""
    request_id = request.scope.get(observability.REQUEST_ID) if status_code >= 500 else None
    if wants_json(request):
        body: dict[str, object] = {"status": status_code, "error_msg": message}
        if request_id:
            body["request_id"] = request_id
        return JSONResponse(body, status_code=status_code)
    return render(request, "error.html", status_code=status_code, status=status_code, message=message,
                  request_id=request_id)


async def handle_minitwit_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MiniTwitError)
    response = error_response(request, exc.status_code, exc.message)
    if isinstance(exc, DatabaseUnavailable):
        # Expected while PostgreSQL restarts: a metric and one log line, not a Sentry event.
        request.app.state.metrics.count_db_unavailable(exc.reason)
        logger.warning("database unavailable: {}", exc.detail or exc.reason, reason=exc.reason,
                       request_id=request.scope.get(observability.REQUEST_ID))
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:  # throttled (429) or the database away (503)
        response.headers["Retry-After"] = str(retry_after)
    if exc.status_code in (408, 413):  # the rest of the body may still be coming: do not wait for it
        response.headers["Connection"] = "close"
    return response


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    messages = {404: "Not found", 405: "Method not allowed"}
    message = exc.detail if exc.detail and exc.status_code not in messages else messages.get(exc.status_code, "")
    return error_response(request, exc.status_code, message or str(exc.detail))


async def handle_server_error(request: Request, exc: Exception) -> Response:
    # Starlette sends this page from outside its middleware stack; the request observer, outside
    # Starlette, still gives it the request id and the security headers.
    return error_response(request, 500, "Internal server error: the failure was logged")


class AppState(State):
    """``app.state`` with plain attributes. Starlette's State keeps them in a dictionary behind
    ``__getattr__``, so every read first fails the normal lookup, which formats an AttributeError
    message in C before the fallback finds the value: a few per request on the hot path."""

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        object.__delattr__(self, name)


class MiniTwit(Starlette):
    """Starlette inside the request observer, with the simulator's routes in a lane before both
    (api_lane)."""

    def __init__(self, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.state = AppState()
        self.observe: Callable[[ASGIApp], RequestObserver] | None = None  # observability.instrument

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        if self.observe is None:
            return stack
        observer = self.observe(stack)
        settings: Settings = self.state.settings
        if settings.bench_variant == "api-through-router":
            return observer  # `minitwit bench layers`: every request through the whole stack
        return ApiLane(observer, self.routes, on_error=handle_minitwit_error, on_server_error=handle_server_error,
                       max_body_bytes=MAX_BODY_BYTES, allowed_hosts=settings.allowed_hosts)


def create_app(settings: Settings, database_url: str) -> Starlette:
    """The app for ``settings``, on the PostgreSQL database at ``database_url``."""
    database = Database(database_url, pool_size=settings.db_pool_size, limits=settings.db)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await database.connect()
        # What exists now (modules, routes, templates, the pool) lives as long as the process:
        # keep it out of the garbage collector's full passes, which would walk it every time.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await database.disconnect()
            flush_access_lines()

    variant = settings.bench_variant  # "" as shipped; `minitwit bench layers` changes one layer
    guard = [Middleware(RequestGuard, refuse=error_response, allowed_hosts=settings.allowed_hosts)]
    app = MiniTwit(
        routes=routes,
        middleware=[
            *(guard if variant != "no-security" else []),
            Middleware(
                SessionMiddleware if variant == "sessions-on-api" else WebSessionMiddleware,
                secret_key=settings.secret_key,
                session_cookie="minitwit_session",
                max_age=sessions.MAX_AGE_SECONDS,
                same_site="lax",
                https_only=settings.production,
            ),
        ],
        exception_handlers={
            MiniTwitError: handle_minitwit_error,
            HTTPException: handle_http_exception,
            Exception: handle_server_error,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.build = build_info()
    app.state.database_url = database_url
    app.state.db = database
    app.state.simulator_credential = SimulatorCredential(settings.simulator_username, settings.simulator_password)
    app.observe = observability.instrument(app, database, app.state.build, metrics_on=variant != "no-metrics",
                                           security_headers_on=variant != "no-security")
    return app


def app_from_environment() -> Starlette:
    """uvicorn's factory: ``minitwit serve`` has put the database URL in the environment."""
    settings = Settings.from_env()
    settings.check_can_serve()
    observability.configure_process(settings)  # uvicorn's worker processes start here
    BoundedHttpToolsProtocol.configure(settings)
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set; start the server with `minitwit serve`")
    return create_app(settings, settings.database_url)
