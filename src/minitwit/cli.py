"""The ``minitwit`` command: serve, migrate, and the operator's tools."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from loguru import logger

from minitwit import backup, bench, legacy, migrations, moderation, monitoring_role, startup, usernames
from minitwit.observability import configure_process
from minitwit.runtime import database_url
from minitwit.settings import ConfigError, Settings
from minitwit.startup import StartupError


def serve(settings: Settings, args: argparse.Namespace) -> int:
    """Migrates (under the lock) and serves with uvicorn until SIGINT/SIGTERM."""
    import uvicorn

    from minitwit.http_protocol import BoundedHttpToolsProtocol
    from minitwit.supervisor import StoppingSupervisor

    settings.check_can_serve()
    # uvicorn re-raises SIGTERM once it has shut down; turned into SystemExit here, it unwinds
    # through database_url() so that the embedded PostgreSQL stops with the server.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    configure_process(settings)  # logs and Sentry here; each uvicorn worker configures its own too
    with database_url(settings) as url:
        wait = settings.db.connect_timeout_seconds
        startup.wait_until_usable(url, wait)
        applied = migrations.apply(url, wait)
        if applied:
            logger.info("applied migrations {}", ", ".join(applied))
        report_kept_names(usernames.fill_missing_keys_at(url))
        os.environ["DATABASE_URL"] = url  # uvicorn's workers build the app from the environment
        options = dict(
            factory=True,
            host=args.host or settings.host,
            port=args.port or settings.port,
            workers=args.workers or settings.workers,
            loop="uvloop",
            # httptools with a header size and time limit (http_protocol.py), finishing what was
            # accepted at a SIGTERM (supervisor.py); the body's time limit is the app's
            # (requests_util.read_body). docs/security.md: which layer stops what.
            http=BoundedHttpToolsProtocol,
            timeout_keep_alive=settings.keep_alive_seconds,
            limit_concurrency=settings.limit_concurrency or None,  # per worker; then 503
            access_log=False,  # the app writes one access line per request itself
            log_config=None,  # uvicorn's loggers go through loguru (configure_logging)
            server_header=False,
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
            # SIGTERM: stop accepting, let in-flight requests finish for this long, close the pool.
            timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
        )
        if options["workers"] == 1:
            uvicorn.run(APP, **options)  # type: ignore[arg-type]
        else:
            config = uvicorn.Config(APP, **options)  # type: ignore[arg-type]
            StoppingSupervisor(config, sockets=[config.bind_socket()]).run()
    return 0


APP = "minitwit.app:app_from_environment"


def report_kept_names(kept: list[str]) -> None:
    """Says which existing usernames were kept although they read like another account's."""
    if kept:
        logger.warning("kept {} existing usernames that read like another account's: {}",
                       len(kept), ", ".join(map(repr, kept)))


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def migrate(settings: Settings, args: argparse.Namespace) -> int:
    """Applies pending migrations, or with --check reports them and exits 1 while any remain."""
    configure_process(settings)  # the waiting lines, in the configured log format
    with database_url(settings) as url:
        wait = settings.db.connect_timeout_seconds
        startup.wait_until_usable(url, wait)
        if args.check:
            todo = migrations.pending(url)
            for migration_id in todo:
                print(f"pending: {migration_id}")
            print("migrations: up to date" if not todo else f"migrations: {len(todo)} pending")
            return 1 if todo else 0
        if args.rollback:
            undone = migrations.rollback_latest(url, wait)
            print(f"rolled back: {', '.join(undone) or 'nothing'}")
            return 0
        applied = migrations.apply(url, wait)
        print(f"applied: {', '.join(applied)}" if applied else "migrations: up to date")
        for name in usernames.fill_missing_keys_at(url):
            print(f"kept username {name!r}: it reads like another account's (usernames.py)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minitwit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve_parser = commands.add_parser("serve", help="migrate, then serve the web UI and the simulator API")
    serve_parser.add_argument("--host", help="address to listen on (MINITWIT_HOST, default 127.0.0.1)")
    serve_parser.add_argument("--port", type=int, help="port (MINITWIT_PORT, default 5000)")
    serve_parser.add_argument("--workers", type=int, help="worker processes (MINITWIT_WORKERS, default CPUs)")
    serve_parser.set_defaults(run=serve)

    migrate_parser = commands.add_parser("migrate", help="apply pending schema migrations")
    mode = migrate_parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="list pending migrations; exit 1 if any")
    mode.add_argument("--rollback", action="store_true", help="roll back the latest migration")
    migrate_parser.set_defaults(run=migrate)
    backup.add_commands(commands)
    legacy.add_commands(commands)
    moderation.add_commands(commands)
    monitoring_role.add_commands(commands)
    bench.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        return int(args.run(settings, args))
    except ConfigError as error:
        print(f"minitwit: {error}", file=sys.stderr)
        return 2
    except StartupError as error:  # the database never became usable: one line, no traceback
        print(f"minitwit: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: everything has been shut down on the way out
        return 130
