"""Observability: Prometheus metrics, request ids and JSON logs, errors to Sentry."""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.types import ASGIApp

from minitwit.db import Database
from minitwit.observability.logs import configure_logging
from minitwit.observability.metrics import Metrics, metrics_endpoint
from minitwit.observability.middleware import REQUEST_ID, RequestObserver
from minitwit.observability.sentry import setup_sentry
from minitwit.settings import Settings
from minitwit.version import BuildInfo

__all__ = ["REQUEST_ID", "RequestObserver", "configure_process", "instrument", "metrics_endpoint"]


def instrument(app: Starlette, database: Database, build: BuildInfo, *, metrics_on: bool = True,
               security_headers_on: bool = True) -> Callable[[ASGIApp], RequestObserver]:
    """Gives ``app`` its own metrics and times ``database``'s queries. Returns what wraps the
    app's middleware stack in the request observer, which labels every response with the
    build's version: Starlette always puts its ServerErrorMiddleware outermost, and the
    observer goes around it (app.MiniTwit.build_middleware_stack). The two switches exist for
    `minitwit bench layers` (what each layer costs); the app always has both on."""
    metrics = Metrics(build)
    app.state.metrics = metrics
    database.observe = metrics.observe_query if metrics_on else None

    def observe(stack: ASGIApp) -> RequestObserver:
        return RequestObserver(stack, metrics if metrics_on else None, build.version,
                               security_headers_on=security_headers_on)

    return observe


def configure_process(settings: Settings) -> None:
    """Per process (the CLI and each uvicorn worker): logs to stdout, errors to Sentry."""
    configure_logging(settings.log_level, settings.log_format)
    setup_sentry(settings)
