"""uvicorn's httptools protocol with the two limits it lacks: header size and header time.

uvicorn bounds idle keep-alive connections (``timeout_keep_alive``) and, with h11 only, the
header size. With httptools it reads headers of any size (20 MB were accepted) and waits for
ever for a connection that sends nothing or drips its request line. This protocol closes a
connection whose request line and headers exceed ``max_header_bytes`` (400, as for any
malformed request) or do not arrive within ``header_timeout_seconds`` of the connection (or,
on a kept-alive connection, of the request's first byte). The body has its own time limit in
the app (requests_util.read_body, 408). ``minitwit serve`` selects this class; each worker sets
the limits from its settings (app.app_from_environment).
"""

from __future__ import annotations

import asyncio

import httptools

from minitwit.settings import Settings
from minitwit.supervisor import DrainingHttpToolsProtocol

HEADER_LINE_OVERHEAD = 4  # ": " and CRLF


class BoundedHttpToolsProtocol(DrainingHttpToolsProtocol):
    """Also drains at a SIGTERM (supervisor.DrainingHttpToolsProtocol)."""

    max_header_bytes = Settings.max_header_bytes
    header_timeout_seconds = Settings.header_timeout_seconds

    @classmethod
    def configure(cls, settings: Settings) -> None:
        cls.max_header_bytes = settings.max_header_bytes
        cls.header_timeout_seconds = settings.header_timeout_seconds

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_bytes = 0
        self._header_deadline: asyncio.TimerHandle | None = None
        self._start_header_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_clock()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        if self._header_deadline is None:  # a further request on a kept-alive connection
            self._start_header_clock()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + HEADER_LINE_OVERHEAD)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._stop_header_clock()
        super().on_headers_complete()

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.max_header_bytes:
            # uvicorn answers a parser error with 400 and closes the connection.
            raise httptools.HttpParserError(f"request headers over {self.max_header_bytes} bytes")

    def _start_header_clock(self) -> None:
        self._header_deadline = self.loop.call_later(self.header_timeout_seconds, self._headers_too_slow)

    def _stop_header_clock(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()
