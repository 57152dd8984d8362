"""The process supervisor of ``minitwit serve`` with several workers."""

from __future__ import annotations

from uvicorn.supervisors.multiprocess import Multiprocess


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
