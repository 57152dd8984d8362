"""Hostile-input middleware: unknown hosts, cross-origin refusal, a body cap for every route,
paths whose encoded slashes stay encoded, and the security headers that the request observer
adds to every response.

RequestGuard is pure ASGI and looks at each request's headers once, so the simulator API pays
a few microseconds for it, not a Starlette ``BaseHTTPMiddleware`` round.

Cross-origin protection works without tokens, like Go's ``net/http.CrossOriginProtection``: a
browser tells us where a request comes from (``Sec-Fetch-Site``, else ``Origin``), and a
state-changing request that a browser marks as coming from another site is refused with 403.
Requests without those headers come from non-browser clients (the simulator, curl, the course's
tests), which no other site can make a victim's browser send, so they pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import quote, unquote, unquote_to_bytes

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from minitwit.requests_util import MAX_BODY_BYTES, BodyTooLarge

CROSS_ORIGIN_REFUSED = "Cross-site request refused: this can only be done from the pages of this site"
UNKNOWN_HOST = "Invalid Host header: this site does not answer to that name"
# Probes and scrapers name the container, not the site; these pages reflect no Host.
HOST_EXEMPT_PATHS = frozenset({"/health", "/ready", "/metrics"})
BODY_TOO_LARGE = f"The request body may have at most {MAX_BODY_BYTES} bytes"

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The legacy GET links that change state (CONTRACT section 2 keeps them for old clients).
STATE_CHANGING_GET_SUFFIXES = ("/follow", "/unfollow")
STATE_CHANGING_GET_PATHS = frozenset({"/logout"})
TRUSTED_FETCH_SITES = frozenset({b"same-origin", b"none"})  # "none": typed URL, bookmark

# Images come from Gravatar; no script runs at all, so none can be injected either.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' https://www.gravatar.com https://secure.gravatar.com; "
    "script-src 'none'; style-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
ALL_RESPONSE_HEADERS = [(b"x-content-type-options", b"nosniff")]
HTML_RESPONSE_HEADERS = [
    *ALL_RESPONSE_HEADERS,
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"referrer-policy", b"same-origin"),  # Gravatar never learns which page showed an avatar
    (b"x-frame-options", b"DENY"),  # frame-ancestors for browsers that predate CSP 2
    (b"cross-origin-opener-policy", b"same-origin"),
]

ErrorRenderer = Callable[[Request, int, str], Response]


def is_state_changing(method: str, path: str) -> bool:
    """Unsafe methods, and the GET (and so HEAD) links that follow, unfollow or sign out."""
    if method not in SAFE_METHODS:
        return True
    return method != "OPTIONS" and (path in STATE_CHANGING_GET_PATHS or path.endswith(STATE_CHANGING_GET_SUFFIXES))


def is_cross_origin(sec_fetch_site: bytes | None, origin: bytes | None, host: bytes | None) -> bool:
    """Whether a browser says the request comes from another site (Go's algorithm)."""
    if sec_fetch_site is not None:
        return sec_fetch_site not in TRUSTED_FETCH_SITES  # cross-site, and same-site (a sibling host)
    if origin is None:
        return False  # not a browser, or a same-origin request from a browser without Fetch Metadata
    _, separator, origin_host = origin.partition(b"://")
    return not separator or origin_host != host  # "Origin: null" (sandboxed, file:) is refused too


def routing_path(raw_path: bytes) -> str:
    """The path as the router should see it: each segment percent-decoded once, with only the
    two characters that would change the routing kept escaped (``%`` as %25, ``/`` as %2F).

    uvicorn decodes the whole path, so ``/x%2Ffollow`` (the page of a user named "x/follow")
    would route as ``/x/follow``, a follow. Routes that take a username decode it back once
    (UsernameConvertor)."""
    segments = raw_path.split(b"/")
    return "/".join(
        unquote_to_bytes(segment).decode("utf-8", "replace").replace("%", "%25").replace("/", "%2F")
        for segment in segments
    )


def routing_path_of(scope: Scope) -> str:
    """``scope``'s path for the router: ``routing_path`` of the raw path when anything in it is
    percent-encoded; without that, uvicorn's decoded path is already right."""
    raw_path = scope.get("raw_path")
    if raw_path and b"%" in raw_path:
        return routing_path(raw_path.partition(b"?")[0])
    return scope["path"]


def guarded_headers(
    headers: Iterable[tuple[bytes, bytes]],
) -> tuple[bytes | None, bytes | None, bytes | None, bytes | None]:
    """The headers the guard judges a request by, in one pass over them:
    (Sec-Fetch-Site, Origin, Host, Content-Length), None for each one absent."""
    sec_fetch_site = origin = host = content_length = None
    for name, value in headers:
        if name == b"sec-fetch-site":
            sec_fetch_site = value
        elif name == b"origin":
            origin = value
        elif name == b"host":
            host = value
        elif name == b"content-length":
            content_length = value
    return sec_fetch_site, origin, host, content_length


def declared_length_allowed(content_length: bytes, max_body_bytes: int) -> bool:
    """Whether a Content-Length header is a number within the body cap."""
    return content_length.isdigit() and int(content_length) <= max_body_bytes


class UsernameConvertor:
    """``{username:username}``: one path segment, decoded once; ``url_for`` encodes it as one
    (``%``, ``/``, ``?``, ``#``, space and ``+`` included), so a name cannot forge a link."""

    regex = "[^/]+"

    def convert(self, value: str) -> str:
        return unquote(value)

    def to_string(self, value: str) -> str:
        return quote(value, safe="")


def host_allowed(host: bytes | None, allowed: frozenset[str]) -> bool:
    """Whether the Host header (port stripped) names one of ``allowed`` ("*.example.org" too)."""
    if host is None:
        return False
    name = host.decode("latin-1").lower()
    name = name.partition("]")[0] + "]" if name.startswith("[") else name.partition(":")[0]  # no port
    if name in allowed:
        return True
    return any(pattern.startswith("*.") and name.endswith(pattern[1:]) for pattern in allowed)


class RequestGuard:
    """Refuses unknown hosts (400), cross-origin state changes (403) and bodies over
    MAX_BODY_BYTES (413), and gives the router a path in which encoded slashes stay encoded.

    ``refuse(request, status, message)`` renders the refusal (the app's error page or JSON). A
    declared Content-Length over the cap is refused before the app runs; a body without one
    (chunked) is counted as it streams, and the read that crosses the cap raises BodyTooLarge,
    which the app's error handler renders.
    """

    def __init__(self, app: ASGIApp, refuse: ErrorRenderer, max_body_bytes: int = MAX_BODY_BYTES,
                 allowed_hosts: Iterable[str] = ()) -> None:
        self.app = app
        self.refuse = refuse
        self.max_body_bytes = max_body_bytes
        self.allowed_hosts = frozenset(allowed_hosts)  # empty: any host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sec_fetch_site, origin, host, content_length = guarded_headers(scope["headers"])
        scope["path"] = routing_path_of(scope)
        if (
            self.allowed_hosts
            and scope["path"] not in HOST_EXEMPT_PATHS
            and not host_allowed(host, self.allowed_hosts)
        ):
            await self._refuse(scope, receive, send, 400, UNKNOWN_HOST)
            return
        browser_says = sec_fetch_site is not None or origin is not None
        if (
            browser_says
            and is_state_changing(scope["method"], scope["path"])
            and is_cross_origin(sec_fetch_site, origin, host)
        ):
            await self._refuse(scope, receive, send, 403, CROSS_ORIGIN_REFUSED)
            return
        if content_length is None:
            receive = self._counting(receive)
        elif not declared_length_allowed(content_length, self.max_body_bytes):
            await self._refuse(scope, receive, send, 413, BODY_TOO_LARGE)
            return
        await self.app(scope, receive, send)

    def _counting(self, receive: Receive) -> Receive:
        limit, received = self.max_body_bytes, 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(BODY_TOO_LARGE)
            return message

        return counting_receive

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
        response = self.refuse(Request(scope, receive), status, message)
        await response(scope, receive, send)


def security_headers(response_headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The headers to add to a response: ``nosniff`` for every one, and CSP, Referrer-Policy and
    framing rules for HTML. Pre-rendered lists; the request observer (observability.middleware)
    adds them in the one ``send`` wrapper it already has, the 500 page included."""
    for name, value in response_headers:
        if name == b"content-type":
            return HTML_RESPONSE_HEADERS if value.startswith(b"text/html") else ALL_RESPONSE_HEADERS
    return ALL_RESPONSE_HEADERS
