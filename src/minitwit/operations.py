"""Endpoints for orchestrators: liveness and readiness."""

from __future__ import annotations

import asyncio
from functools import cache

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from yoyo import read_migrations

from minitwit.errors import DatabaseUnavailable
from minitwit.paths import MIGRATIONS_DIR
from minitwit.version import BuildInfo

READY_TIMEOUT = 2.0  # seconds; an orchestrator's probe should not hang on a stuck database


@cache
def known_migrations() -> tuple[str, ...]:
    """The ids of the migrations this version ships, read from migrations/ once per process."""
    return tuple(migration.id for migration in read_migrations(str(MIGRATIONS_DIR)))


async def health(request: Request) -> Response:
    """The process answers (container healthcheck), and says which build it runs."""
    build: BuildInfo = request.app.state.build
    return JSONResponse({"status": "ok", "version": build.version, "revision": build.revision})


async def pending_migrations(request: Request) -> list[str]:
    """Migrations this version ships that the database lacks: one query on yoyo's table."""
    async with request.app.state.db.session() as db:
        try:
            applied = {row["migration_id"] for row in await db.fetch_all("applied_migrations")}
        except asyncpg.UndefinedTableError:  # never migrated at all
            applied = set()
    return [migration_id for migration_id in known_migrations() if migration_id not in applied]


def not_ready(reason: str, retry_after: int) -> Response:
    return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503,
                        headers={"Retry-After": str(retry_after)})


async def ready(request: Request) -> Response:
    """The database answers and no migration is pending (orchestrator readiness)."""
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            pending = await pending_migrations(request)
    except DatabaseUnavailable as error:
        return not_ready(f"database {error.reason.replace('_', ' ')}: {error.detail}", error.retry_after)
    except TimeoutError:
        return not_ready(f"database did not answer within {READY_TIMEOUT:g} s", DatabaseUnavailable.retry_after)
    except Exception as error:  # any failure means "not ready", with the reason
        return not_ready(type(error).__name__, DatabaseUnavailable.retry_after)
    if pending:
        return JSONResponse({"status": "migrating", "pending": pending}, status_code=503)
    return JSONResponse({"status": "ready"})
