"""Configuration from the environment.

Every variable ``X`` may instead be given as ``X_FILE``, the path of a file holding the value
(Docker and Swarm secrets). Development defaults exist so that ``make run`` works on a fresh
clone; production mode (``MINITWIT_ENV=production``) refuses every one of them.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# Development defaults: fine on a laptop, refused in production mode.
DEV_SECRET_KEY = "dev-only-insecure-secret-key"  # noqa: S105  # nosec B105 - refused when MINITWIT_ENV=production
DEV_SIMULATOR_USERNAME = "simulator"
DEV_SIMULATOR_PASSWORD = "super_safe!"  # noqa: S105  # nosec B105 - the course simulator's public default
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")  # loguru's


class ConfigError(RuntimeError):
    """The configuration is unusable; the message says what to set."""


def read_variable(env: Mapping[str, str], name: str) -> str | None:
    """The value of ``name``, or of the file that ``name_FILE`` points at (trailing newline stripped)."""
    path = env.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as error:
            raise ConfigError(f"{name}_FILE={path} cannot be read: {error.strerror}") from error
    value = env.get(name)
    return value if value else None


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = read_variable(env, name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {raw!r}") from None


def _is_address_or_network(item: str) -> bool:
    try:
        ipaddress.ip_network(item.strip(), strict=False)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class ThrottleLimits:
    """How many failed sign-ins and sign-ups the site takes before slowing or refusing more.

    Counted in PostgreSQL, so all replicas share them; 0 turns a limit off. Failed sign-ins are
    free up to a count, per (username, address) and per address; past it each failure doubles
    the wait before the next try (1 s, 2 s, 4 s... up to the maximum); a quiet day forgets them
    (docs/security.md has the policy). The defaults are far above what a household (one
    address) or a test suite reaches.
    """

    login_free_failures_per_user: int = 5  # THROTTLE_LOGIN_FREE_FAILURES_PER_USER (per address)
    login_free_failures_per_address: int = 100  # THROTTLE_LOGIN_FREE_FAILURES_PER_ADDRESS
    login_max_delay_seconds: int = 300  # THROTTLE_LOGIN_MAX_DELAY_SECONDS
    login_forget_after_seconds: int = 24 * 3600  # THROTTLE_LOGIN_FORGET_AFTER_SECONDS
    signups_per_address: int = 20  # THROTTLE_SIGNUPS_PER_ADDRESS (web form and anonymous API)
    signup_window_seconds: int = 3600  # THROTTLE_SIGNUP_WINDOW_SECONDS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ThrottleLimits:
        defaults = cls()
        return cls(**{
            name: _int(env, f"THROTTLE_{name.upper()}", getattr(defaults, name))
            for name in cls.__dataclass_fields__
        })


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = read_variable(env, name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {raw!r}") from None


@dataclass(frozen=True)
class DatabaseLimits:
    """How long MiniTwit waits for PostgreSQL, and how long it lets a statement run.

    Defaults a DBA may change through the variable named beside each (docs/operating.md). They
    apply per connection of the app's pool; migrations and backups set none of the statement
    limits (a migration may rightly take long).
    """

    # Start-up (serve, migrate, backup, restore) waits this long for PostgreSQL to accept
    # connections: long enough for a container's first start (initdb and its restart).
    connect_timeout_seconds: float = 60.0  # DB_CONNECT_TIMEOUT_SECONDS
    # A request waits at most this long for a pooled connection, then gets a 503.
    acquire_timeout_seconds: float = 3.0  # DB_ACQUIRE_TIMEOUT_SECONDS
    # PostgreSQL cancels a statement running longer (a lock wait included): 503, connection freed.
    statement_timeout_seconds: float = 5.0  # DB_STATEMENT_TIMEOUT_SECONDS
    # PostgreSQL closes a session idle inside a transaction this long (a stuck request's locks).
    idle_in_transaction_timeout_seconds: float = 10.0  # DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS
    # TCP keepalives on both ends of each connection: first probe after this idle time, well
    # under the 900 s after which Swarm's IPVS forgets an idle flow (moby/moby#31208).
    keepalive_idle_seconds: int = 60  # DB_KEEPALIVE_IDLE_SECONDS
    keepalive_interval_seconds: int = 10  # DB_KEEPALIVE_INTERVAL_SECONDS
    keepalive_count: int = 6  # DB_KEEPALIVE_COUNT: unanswered probes before the peer is dead

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DatabaseLimits:
        defaults = cls()
        values: dict[str, float] = {}
        for name in cls.__dataclass_fields__:
            default = getattr(defaults, name)
            variable = f"DB_{name.upper()}"
            read = _int if isinstance(default, int) else _seconds
            values[name] = read(env, variable, default)
        return cls(**values)  # type: ignore[arg-type]

    def check(self) -> None:
        for name, value in vars(self).items():
            if value <= 0:
                raise ConfigError(f"DB_{name.upper()} must be positive")


# The layers `minitwit bench layers` switches, one per run (the access log is LOG_LEVEL=WARNING
# and Sentry a SENTRY_DSN, both ordinary settings).
BENCH_VARIANTS = ("no-metrics", "no-security", "sessions-on-api", "api-through-router")


@dataclass(frozen=True)
class Settings:
    """Everything the app and the CLI need to know, read once at start-up."""

    environment: str = "development"
    database_url: str | None = None
    data_dir: Path = Path(".minitwit-data")
    secret_key: str = DEV_SECRET_KEY
    simulator_username: str = DEV_SIMULATOR_USERNAME
    simulator_password: str = DEV_SIMULATOR_PASSWORD
    metrics_token: str | None = None
    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    # Peers whose X-Forwarded-For/-Proto uvicorn believes: the TLS edge's addresses (comma
    # separated IPs or networks). Anyone else's header is ignored, so a client reaching the app
    # directly cannot pick the address that sign-in throttling counts.
    forwarded_allow_ips: str = "127.0.0.1,::1"
    db_pool_size: int = 10
    log_level: str = "INFO"
    log_format: str = "json"
    sentry_dsn: str | None = None
    sentry_environment: str | None = None
    sentry_release: str | None = None
    throttle: ThrottleLimits = ThrottleLimits()
    db: DatabaseLimits = DatabaseLimits()
    # In-flight requests get this long to finish after SIGTERM; below the orchestrator's grace
    # period (Docker's default: 10 s), so that the pool is closed before a SIGKILL could come.
    shutdown_timeout_seconds: float = 8.0
    # Host names the site answers to (MINITWIT_ALLOWED_HOSTS, comma-separated; required in
    # production): another Host header gets 400. Empty: any host (development, tests).
    allowed_hosts: tuple[str, ...] = ()
    # Limits on slow and greedy clients (docs/security.md: which layer stops which attack).
    body_timeout_seconds: float = 10.0  # BODY_TIMEOUT_SECONDS: the whole body, else 408
    header_timeout_seconds: float = 10.0  # HEADER_TIMEOUT_SECONDS: the request line and headers
    max_header_bytes: int = 16 * 1024  # MAX_HEADER_BYTES: request line and headers together
    keep_alive_seconds: int = 5  # KEEP_ALIVE_SECONDS: an idle connection between requests
    limit_concurrency: int = 1000  # LIMIT_CONCURRENCY: connections per worker, then 503 (0: none)
    # MINITWIT_BENCH_VARIANT: one optional layer changed, for `minitwit bench layers` only (what
    # each layer costs per request); refused in production. One of BENCH_VARIANTS, or "".
    bench_variant: str = ""
    # Names of the variables that fell back to a development default (refused in production).
    defaulted: frozenset[str] = frozenset()

    @property
    def production(self) -> bool:
        return self.environment == "production"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        get = lambda name: read_variable(env, name)  # noqa: E731 - a short local alias
        defaulted = frozenset(
            name
            for name in ("SECRET_KEY", "SIMULATOR_USERNAME", "SIMULATOR_PASSWORD")
            if get(name) is None
        )
        settings = cls(
            environment=(get("MINITWIT_ENV") or "development").lower(),
            database_url=get("DATABASE_URL"),
            data_dir=Path(get("MINITWIT_DATA_DIR") or ".minitwit-data"),
            secret_key=get("SECRET_KEY") or DEV_SECRET_KEY,
            simulator_username=get("SIMULATOR_USERNAME") or DEV_SIMULATOR_USERNAME,
            simulator_password=get("SIMULATOR_PASSWORD") or DEV_SIMULATOR_PASSWORD,
            metrics_token=get("METRICS_TOKEN"),
            host=get("MINITWIT_HOST") or "127.0.0.1",
            port=_int(env, "MINITWIT_PORT", 5000),
            workers=_int(env, "MINITWIT_WORKERS", os.cpu_count() or 1),
            forwarded_allow_ips=get("FORWARDED_ALLOW_IPS") or "127.0.0.1,::1",
            db_pool_size=_int(env, "DB_POOL_SIZE", 10),
            log_level=(get("LOG_LEVEL") or "INFO").upper(),
            log_format=(get("LOG_FORMAT") or "json").lower(),
            sentry_dsn=get("SENTRY_DSN"),
            sentry_environment=get("SENTRY_ENVIRONMENT"),
            sentry_release=get("SENTRY_RELEASE"),
            throttle=ThrottleLimits.from_env(env),
            db=DatabaseLimits.from_env(env),
            shutdown_timeout_seconds=_seconds(env, "SHUTDOWN_TIMEOUT_SECONDS", 8.0),
            allowed_hosts=tuple(
                host.strip().lower() for host in (get("MINITWIT_ALLOWED_HOSTS") or "").split(",") if host.strip()
            ),
            body_timeout_seconds=_int(env, "BODY_TIMEOUT_SECONDS", 10),
            header_timeout_seconds=_int(env, "HEADER_TIMEOUT_SECONDS", 10),
            max_header_bytes=_int(env, "MAX_HEADER_BYTES", 16 * 1024),
            keep_alive_seconds=_int(env, "KEEP_ALIVE_SECONDS", 5),
            limit_concurrency=_int(env, "LIMIT_CONCURRENCY", 1000),
            bench_variant=(get("MINITWIT_BENCH_VARIANT") or "").lower(),
            defaulted=defaulted,
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse what cannot work for any command; in production, a missing DATABASE_URL."""
        if self.environment not in ("development", "production", "test"):
            raise ConfigError("MINITWIT_ENV must be development, test or production")
        if self.log_format not in ("json", "text"):
            raise ConfigError("LOG_FORMAT must be json or text")
        if min(vars(self.throttle).values()) < 0:
            raise ConfigError("THROTTLE_* values must be 0 (off) or positive")
        self.db.check()
        if self.shutdown_timeout_seconds <= 0:
            raise ConfigError("SHUTDOWN_TIMEOUT_SECONDS must be positive")
        if min(self.body_timeout_seconds, self.header_timeout_seconds, self.keep_alive_seconds) <= 0:
            raise ConfigError("BODY_TIMEOUT_SECONDS, HEADER_TIMEOUT_SECONDS and KEEP_ALIVE_SECONDS must be positive")
        if self.max_header_bytes < 1024 or self.limit_concurrency < 0:
            raise ConfigError("MAX_HEADER_BYTES must be at least 1024 and LIMIT_CONCURRENCY 0 (none) or positive")
        if not all(_is_address_or_network(item) for item in self.forwarded_allow_ips.split(",")):
            raise ConfigError("FORWARDED_ALLOW_IPS must list IP addresses or networks (a.b.c.d/nn), comma separated")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
        if self.bench_variant and self.bench_variant not in BENCH_VARIANTS:
            raise ConfigError(f"MINITWIT_BENCH_VARIANT must be one of {', '.join(BENCH_VARIANTS)}")
        if self.bench_variant and self.production:
            raise ConfigError("MINITWIT_BENCH_VARIANT is for benchmarks: refused in production mode")
        if self.production and not self.database_url:
            raise ConfigError(
                "refusing to start in production mode: DATABASE_URL is required "
                "(the embedded database is for development)"
            )

    def check_can_serve(self) -> None:
        """Before serving in production: refuse every development default.

        Operator commands (migrate, backup, restore) need only the database, so that a backup
        job is not handed the session key or the simulator's credential."""
        if not self.production:
            return
        problems = []
        if self.secret_key == DEV_SECRET_KEY or len(self.secret_key) < 32:
            problems.append("SECRET_KEY must be set to a random value of at least 32 characters")
        # The simulator's credential may well be the course's published one, but only when an
        # operator wrote it down on purpose: a silent fallback is refused.
        for name in ("SIMULATOR_USERNAME", "SIMULATOR_PASSWORD"):
            if name in self.defaulted:
                problems.append(f"{name} must be set explicitly")
        if not self.metrics_token:
            problems.append("METRICS_TOKEN is required so that /metrics is not public")
        if not self.allowed_hosts:
            problems.append("MINITWIT_ALLOWED_HOSTS is required (the site's host names, comma-separated)")
        if problems:
            raise ConfigError("refusing to start in production mode: " + "; ".join(problems))
