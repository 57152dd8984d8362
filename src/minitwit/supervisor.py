"""How ``minitwit serve`` stops: uvicorn's supervisor and HTTP protocol, with two changes so that
a SIGTERM under load costs no request that reached the server."""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors.multiprocess import Multiprocess

DRAIN_SECONDS = 1.0  # how long a just-accepted connection may take to send its request


class StoppingSupervisor(Multiprocess):
    """uvicorn's multi-process supervisor (what ``uvicorn.run`` uses for workers > 1), except
    that on SIGTERM it lets go of the listening socket as soon as it has told the workers to stop.

    uvicorn's own keeps its copy open until the last worker has finished its in-flight requests:
    meanwhile the kernel keeps completing new connections that no worker will accept, and those
    clients get a reset at exit (after sending their request) instead of a clean refusal at once.
    """

    def terminate_all(self) -> None:
        super().terminate_all()
        for sock in self.sockets:
            sock.close()


class DrainingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, except that at shutdown a connection accepted but whose
    first request has not been read yet (it may well sit in the socket buffer) is given
    DRAIN_SECONDS to arrive and is then answered with ``Connection: close``. uvicorn's own closes
    such a connection at once, which resets a client that had already sent its request."""

    draining = False

    def shutdown(self) -> None:
        if self.cycle is not None:  # a request in flight, or a kept-alive connection between two
            super().shutdown()
            return
        self.draining = True
        self.loop.call_later(DRAIN_SECONDS, self._close_if_still_idle)

    def _close_if_still_idle(self) -> None:
        if self.cycle is None and not self.transport.is_closing():
            self.transport.close()

    def on_headers_complete(self) -> None:
        HttpToolsProtocol.on_headers_complete(self)  # by name: a super() proxy per request costs more
        if self.draining and self.cycle is not None:
            self.cycle.keep_alive = False
