"""Endpoints for orchestrators: liveness and readiness."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from minitwit import migrations


async def health(request: Request) -> Response:
    """The process answers (container healthcheck)."""
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    """The database answers and no migration is pending (orchestrator readiness)."""
    try:
        async with request.app.state.db.session() as db:
            await db.fetch_value("get_latest")
        pending = await asyncio.to_thread(migrations.pending, request.app.state.database_url)
    except Exception as error:
        return JSONResponse({"status": "unavailable", "reason": type(error).__name__}, status_code=503)
    if pending:
        return JSONResponse({"status": "migrating", "pending": pending}, status_code=503)
    return JSONResponse({"status": "ready"})
