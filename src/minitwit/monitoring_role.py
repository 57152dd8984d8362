"""``minitwit monitoring-role``: the read-only PostgreSQL login of postgres_exporter.

An init step rather than a migration: a migration is the same for every deployment and lives in
the repository, so it cannot know the role's password, which is a per-deployment secret
(``MONITORING_DB_PASSWORD_FILE``). Roles also belong to the server, not to the database a dump
restores, so the step must be repeatable anyway: it creates the role or resets its attributes
and password (rotating the secret = running it again), grants ``pg_monitor``, and creates the
``pg_stat_statements`` extension where the server has it. It connects with ``DATABASE_URL``,
which must be allowed to create roles (the database owner of the official image is).
"""

from __future__ import annotations

import argparse
import os
import sys

import psycopg
from psycopg import sql

from minitwit import migrations
from minitwit.paths import SQL_DIR
from minitwit.queries import load_queries
from minitwit.runtime import database_url
from minitwit.settings import ConfigError, Settings, read_variable

DEFAULT_ROLE = "minitwit_monitor"
# Templates for the operator's commands, not queries: the app prepares everything in sql/*.sql.
ADMIN_SQL_DIR = SQL_DIR / "admin"


def _statement(name: str, **values: sql.Composable) -> sql.Composed:
    return sql.SQL(load_queries(ADMIN_SQL_DIR)[name].sql).format(**values)


def ensure_role(url: str, role: str, password: str) -> list[str]:
    """Creates or updates ``role`` with ``password`` and pg_monitor; returns what it did."""
    done = []
    with psycopg.connect(migrations.libpq_url(url), autocommit=True) as connection:
        found = connection.execute(_statement("monitoring_role_exists", role_name=sql.Literal(role))).fetchone()
        action = "monitoring_role_update" if found and found[0] else "monitoring_role_create"
        connection.execute(_statement(action, role=sql.Identifier(role), password=sql.Literal(password)))
        done.append(f"{'updated' if action.endswith('update') else 'created'} role {role}")
        connection.execute(_statement("monitoring_role_grant", role=sql.Identifier(role)))
        done.append(f"granted pg_monitor to {role}")
        try:
            connection.execute(_statement("monitoring_statements_extension"))
            done.append("pg_stat_statements extension present")
        except psycopg.Error as error:  # a server without the contrib module: the rest still works
            done.append(f"pg_stat_statements not available ({error.diag.message_primary}); top statements stay empty")
    return done


def run_monitoring_role(settings: Settings, args: argparse.Namespace) -> int:
    role = args.role or os.environ.get("MONITORING_DB_USER") or DEFAULT_ROLE
    try:
        password = read_variable(os.environ, "MONITORING_DB_PASSWORD")
    except ConfigError as error:
        print(f"minitwit: {error}", file=sys.stderr)
        return 2
    if not password:
        print("minitwit: set MONITORING_DB_PASSWORD_FILE (or MONITORING_DB_PASSWORD) to the monitoring role's "
              "password", file=sys.stderr)
        return 2
    try:
        with database_url(settings) as url:
            for line in ensure_role(url, role, password):
                print(line)
    except psycopg.Error as error:
        print(f"minitwit: monitoring-role failed: {error}", file=sys.stderr)
        return 1
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "monitoring-role", help="create or update the read-only PostgreSQL role of postgres_exporter (pg_monitor)")
    parser.add_argument("--role", help=f"role name (MONITORING_DB_USER, default {DEFAULT_ROLE})")
    parser.set_defaults(run=run_monitoring_role)
