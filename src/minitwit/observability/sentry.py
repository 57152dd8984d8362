"""Error reporting to Sentry (on when SENTRY_DSN is set), without passwords or cookies.

Request errors are reported by the request middleware itself, once, with the route and the
request id as tags; Sentry's automatic web-framework integrations stay off so that nothing else
reads requests (their headers, cookies or bodies) into events.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

import sentry_sdk
from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber
from sentry_sdk.transport import Transport

from minitwit.settings import Settings

# Keys whose values Sentry replaces with "[Filtered]" anywhere in an event.
DENYLIST = [*DEFAULT_DENYLIST, "pwd", "pw_hash", "minitwit_session", "simulator_password", "secret_key"]


def release_name(settings: Settings) -> str:
    if settings.sentry_release:
        return settings.sentry_release
    try:
        return f"minitwit@{version('minitwit')}"
    except PackageNotFoundError:
        return "minitwit@unknown"


def scrub_event(event: Any, hint: Any) -> Any:
    """Last line of defence: an event keeps no request headers, cookies or body."""
    request = event.get("request")
    if isinstance(request, dict):
        for key in ("headers", "cookies", "data", "query_string", "env"):
            request.pop(key, None)
    return event


def setup_sentry(settings: Settings, transport: Transport | type[Transport] | None = None) -> bool:
    """Starts the Sentry client when a DSN is configured; returns whether it did."""
    if not settings.sentry_dsn:
        return False
    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.sentry_environment or settings.environment,
        release=release_name(settings),
        # send_default_pii stays unset, which means False (sentry-sdk 2.7x deprecates the option
        # and warns when it is passed at all): no user, IP address, cookies or headers.
        include_local_variables=False,  # a frame's locals may hold a password or a request body
        max_request_body_size="never",
        auto_enabling_integrations=False,
        event_scrubber=EventScrubber(denylist=DENYLIST, recursive=True),
        before_send=scrub_event,
        transport=transport,
    )
    return True


def report_exception(error: BaseException, *, request_id: str, route: str, method: str, path: str) -> None:
    """Sends one failed request's exception to Sentry (a no-op without a DSN)."""
    if not sentry_sdk.get_client().is_active():
        return
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("request_id", request_id)
        scope.set_tag("route", route)
        scope.set_tag("http.method", method)
        scope.set_transaction_name(f"{method} {route}")

        def add_request(event: Any, hint: Any) -> Any:
            event["request"] = {"method": method, "url": path}  # no query string, headers or body
            return event

        scope.add_event_processor(add_request)
        sentry_sdk.capture_exception(error)
