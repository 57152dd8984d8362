"""Observability: Prometheus metrics, request ids and JSON logs, errors to Sentry."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.types import ASGIApp

from minitwit.db import Database
from minitwit.observability.logs import configure_logging
from minitwit.observability.metrics import Metrics, metrics_endpoint
from minitwit.observability.middleware import REQUEST_ID, RequestObserver
from minitwit.observability.sentry import setup_sentry
from minitwit.settings import Settings
from minitwit.version import BuildInfo

__all__ = ["REQUEST_ID", "configure_process", "instrument", "metrics_endpoint"]


def instrument(app: Starlette, database: Database, build: BuildInfo, *, metrics_on: bool = True,
               security_headers_on: bool = True) -> Metrics:
    """Gives ``app`` its own metrics, times ``database``'s queries, and wraps the app in the
    request observer, which labels every response with the build's version. The two switches
    exist for `minitwit bench layers` (what each layer costs); the app always has both on."""
    metrics = Metrics(build)
    app.state.metrics = metrics
    database.observe = metrics.observe_query if metrics_on else None
    # Starlette always puts its ServerErrorMiddleware outermost; the observer goes around it.
    # Wrapping the builder (not the built stack) keeps the stack lazy, as Starlette has it.
    build_stack = app.build_middleware_stack

    def build_observed_stack() -> ASGIApp:
        return RequestObserver(build_stack(), metrics if metrics_on else None, build.version,
                               security_headers_on=security_headers_on)

    app.build_middleware_stack = build_observed_stack  # type: ignore[method-assign]
    return metrics


def configure_process(settings: Settings) -> None:
    """Per process (the CLI and each uvicorn worker): logs to stdout, errors to Sentry."""
    configure_logging(settings.log_level, settings.log_format)
    setup_sentry(settings)
