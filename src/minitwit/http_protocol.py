"""uvicorn's httptools protocol with the two limits it lacks: header size and header time.

uvicorn bounds idle keep-alive connections (``timeout_keep_alive``) and, with h11 only, the
header size. With httptools it reads headers of any size (20 MB were accepted) and waits for
ever for a connection that sends nothing or drips its request line. This protocol closes a
connection whose request line and headers exceed ``max_header_bytes`` (400, as for any
malformed request) or do not arrive within ``header_timeout_seconds`` of the connection (or,
on a kept-alive connection, of the request's first byte). The body has its own time limit in
the app (requests_util.read_body, 408). ``minitwit serve`` selects this class; each worker sets
the limits from its settings (app.app_from_environment).

Both limits cost a request little, because every simulator request opens a connection of its
own (docs/performance.md): the size is counted per chunk received, not per header line, and
checked exactly once the head is complete only when the chunks could have gone over; the time
is watched by one timer per worker that looks at the connections still reading a head, not by a
timer per connection.
"""

from __future__ import annotations

import asyncio

import httptools

from minitwit.settings import Settings
from minitwit.supervisor import DrainingHttpToolsProtocol

HEADER_LINE_OVERHEAD = 4  # ": " and CRLF
TOO_LARGE = "Invalid HTTP request received."  # what uvicorn answers to any malformed head
WATCH_EVERY_SECONDS = 0.5


class BoundedHttpToolsProtocol(DrainingHttpToolsProtocol):
    """Also drains at a SIGTERM (supervisor.DrainingHttpToolsProtocol)."""

    max_header_bytes = Settings.max_header_bytes
    header_timeout_seconds = Settings.header_timeout_seconds
    _watched_loop: asyncio.AbstractEventLoop | None = None  # the loop whose heads are watched

    @classmethod
    def configure(cls, settings: Settings) -> None:
        cls.max_header_bytes = settings.max_header_bytes
        cls.header_timeout_seconds = settings.header_timeout_seconds

    # The base class's methods are called by name, not through super(): these run for every
    # request, and a bare super() call builds a proxy object each time.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        DrainingHttpToolsProtocol.connection_made(self, transport)
        self._in_head = True  # reading a request line and headers
        self._head_started = self.loop.time()
        self._head_bytes = 0  # of the head, in the chunks received before the one being parsed
        self._chunk_bytes = 0
        if BoundedHttpToolsProtocol._watched_loop is not self.loop:
            BoundedHttpToolsProtocol._watched_loop = self.loop
            self.loop.call_later(WATCH_EVERY_SECONDS, _close_slow_heads, self.loop, self.connections)

    def on_message_begin(self) -> None:
        DrainingHttpToolsProtocol.on_message_begin(self)
        if not self._in_head:  # a further request on a kept-alive connection: its own clock
            self._in_head = True
            self._head_started = self.loop.time()
            self._head_bytes = 0

    def data_received(self, data: bytes) -> None:
        self._chunk_bytes = len(data)
        DrainingHttpToolsProtocol.data_received(self, data)
        if self._in_head and not self.transport.is_closing():  # all of this chunk was head
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self.logger.warning(TOO_LARGE)
                self.send_400_response(TOO_LARGE)

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head_bytes + self._chunk_bytes > self.max_header_bytes and self._head_size() > self.max_header_bytes:
            # uvicorn answers a parser error with 400 and closes the connection.
            raise httptools.HttpParserError(f"request headers over {self.max_header_bytes} bytes")
        DrainingHttpToolsProtocol.on_headers_complete(self)

    def _head_size(self) -> int:
        """The target and the headers, as the limit counts them (the chunks may hold body)."""
        return len(self.url) + sum(
            len(name) + len(value) + HEADER_LINE_OVERHEAD for name, value in self.headers)

    def _head_too_slow(self, now: float) -> bool:
        return self._in_head and now - self._head_started > self.header_timeout_seconds

    def _close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()


def _close_slow_heads(loop: asyncio.AbstractEventLoop, connections: set) -> None:
    """Every WATCH_EVERY_SECONDS: closes the connections whose head has taken too long."""
    now = loop.time()
    for connection in list(connections):
        if isinstance(connection, BoundedHttpToolsProtocol) and connection._head_too_slow(now):
            connection._close()
    if BoundedHttpToolsProtocol._watched_loop is loop:
        loop.call_later(WATCH_EVERY_SECONDS, _close_slow_heads, loop, connections)
