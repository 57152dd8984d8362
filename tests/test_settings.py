"""Configuration from the environment, *_FILE secrets, and production mode's refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from minitwit.settings import DEV_SECRET_KEY, ConfigError, Settings

PRODUCTION = {
    "MINITWIT_ENV": "production",
    "DATABASE_URL": "postgresql://minitwit@db/minitwit",
    "SECRET_KEY": "k" * 40,
    "SIMULATOR_USERNAME": "simulator",
    "SIMULATOR_PASSWORD": "super_safe!",
    "METRICS_TOKEN": "t" * 20,
    "MINITWIT_ALLOWED_HOSTS": "minitwit.example.org",
}


def test_development_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.environment == "development" and settings.database_url is None
    assert settings.secret_key == DEV_SECRET_KEY and settings.port == 5000 and settings.host == "127.0.0.1"
    assert settings.defaulted == {"SECRET_KEY", "SIMULATOR_USERNAME", "SIMULATOR_PASSWORD"}


def test_file_variables_win_and_lose_their_newline(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    settings = Settings.from_env({"SECRET_KEY": "plain", "SECRET_KEY_FILE": str(secret)})
    assert settings.secret_key == "from-a-file"


def test_unreadable_secret_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"SECRET_KEY_FILE=.* cannot be read"):
        Settings.from_env({"SECRET_KEY_FILE": str(tmp_path / "missing")})


def test_production_accepts_a_complete_configuration() -> None:
    settings = Settings.from_env(PRODUCTION)
    settings.check_can_serve()
    assert settings.production and settings.database_url == PRODUCTION["DATABASE_URL"]


def test_operator_commands_in_production_need_only_the_database() -> None:
    settings = Settings.from_env({"MINITWIT_ENV": "production", "DATABASE_URL": "postgresql://db/minitwit"})
    assert settings.database_url
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        settings.check_can_serve()
    with pytest.raises(ConfigError, match="DATABASE_URL is required"):
        Settings.from_env({"MINITWIT_ENV": "production"})


@pytest.mark.parametrize(
    "change, complaint",
    [
        ({"DATABASE_URL": ""}, "DATABASE_URL is required"),
        ({"SECRET_KEY": ""}, "SECRET_KEY must be set"),
        ({"SECRET_KEY": DEV_SECRET_KEY}, "SECRET_KEY must be set"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY must be set"),
        ({"SIMULATOR_PASSWORD": ""}, "SIMULATOR_PASSWORD must be set explicitly"),
        ({"SIMULATOR_USERNAME": ""}, "SIMULATOR_USERNAME must be set explicitly"),
        ({"METRICS_TOKEN": ""}, "METRICS_TOKEN is required"),
    ],
)
def test_production_refuses_development_defaults(change: dict[str, str], complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        Settings.from_env(PRODUCTION | change).check_can_serve()


@pytest.mark.parametrize(
    "env", [{"MINITWIT_PORT": "http"}, {"MINITWIT_ENV": "staging"}, {"LOG_FORMAT": "xml"},
            {"FORWARDED_ALLOW_IPS": "10.213.0.0/33"}, {"FORWARDED_ALLOW_IPS": "edge"}]
)
def test_malformed_values_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        Settings.from_env(env)


def test_database_limits_come_from_the_environment() -> None:
    settings = Settings.from_env({
        "DB_CONNECT_TIMEOUT_SECONDS": "120", "DB_ACQUIRE_TIMEOUT_SECONDS": "1.5",
        "DB_STATEMENT_TIMEOUT_SECONDS": "2", "DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS": "30",
        "DB_KEEPALIVE_IDLE_SECONDS": "30", "SHUTDOWN_TIMEOUT_SECONDS": "5",
    })
    assert settings.db.connect_timeout_seconds == 120 and settings.db.acquire_timeout_seconds == 1.5
    assert settings.db.statement_timeout_seconds == 2 and settings.db.idle_in_transaction_timeout_seconds == 30
    assert settings.db.keepalive_idle_seconds == 30 and settings.shutdown_timeout_seconds == 5
    assert Settings.from_env({}).db.keepalive_idle_seconds < 900  # under Swarm's IPVS idle timeout


@pytest.mark.parametrize("variable, value", [
    ("DB_STATEMENT_TIMEOUT_SECONDS", "soon"), ("DB_ACQUIRE_TIMEOUT_SECONDS", "0"),
    ("DB_KEEPALIVE_COUNT", "2.5"), ("SHUTDOWN_TIMEOUT_SECONDS", "-1"),
])
def test_bad_database_limits_are_refused(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({variable: value})


def test_forwarded_headers_are_believed_only_from_the_listed_peers() -> None:
    """uvicorn's own default (the machine itself) unless the stack names the edge's network."""
    assert Settings.from_env({}).forwarded_allow_ips == "127.0.0.1,::1"
    assert Settings.from_env({"FORWARDED_ALLOW_IPS": "10.213.0.0/24"}).forwarded_allow_ips == "10.213.0.0/24"


def test_a_bench_variant_is_checked_and_refused_in_production() -> None:
    assert Settings.from_env({"MINITWIT_BENCH_VARIANT": "no-metrics"}).bench_variant == "no-metrics"
    with pytest.raises(ConfigError, match="MINITWIT_BENCH_VARIANT must be one of"):
        Settings.from_env({"MINITWIT_BENCH_VARIANT": "no-logs"})
    with pytest.raises(ConfigError, match="refused in production"):
        Settings.from_env({"MINITWIT_ENV": "production", "DATABASE_URL": "postgresql://db/minitwit",
                           "MINITWIT_BENCH_VARIANT": "no-security"})
