"""What a deployment relies on: replicas that start together, sessions shared between replicas
and restarts, production mode refusing development defaults, and no secret in the repository."""

from __future__ import annotations

import base64
import html
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path

import pytest
import requests
from cli_helpers import clean_environment, stop_leftover_postgres
from fixtures import REPO_ROOT, free_port, sql, wait_until_up
from yoyo import read_migrations

from minitwit.paths import MIGRATIONS_DIR
from minitwit.settings import (
    DEV_SECRET_KEY,
    DEV_SIMULATOR_PASSWORD,
    DEV_SIMULATOR_USERNAME,
)

# --- replicas starting together -----------------------------------------------------------------


def test_two_servers_starting_together_apply_each_migration_once(
    server_process_factory, empty_database_url: str
) -> None:
    info = {"LOG_LEVEL": "INFO"}  # "applied migrations" is an INFO log line
    first, first_url = server_process_factory(empty_database_url, wait=False, env=info)
    second, second_url = server_process_factory(empty_database_url, wait=False, env=info)
    wait_until_up(first_url, first)
    wait_until_up(second_url, second)
    for url in (first_url, second_url):
        assert requests.get(url + "/ready", timeout=10).status_code == 200

    expected = sorted(migration.id for migration in read_migrations(str(MIGRATIONS_DIR)))
    assert sql(empty_database_url, "SELECT migration_id, count(*) FROM _yoyo_migration GROUP BY 1 ORDER BY 1") == [
        (migration_id, 1) for migration_id in expected
    ]
    assert sql(
        empty_database_url,
        "SELECT migration_id, count(*) FROM _yoyo_log WHERE operation = 'apply' GROUP BY 1 ORDER BY 1",
    ) == [(migration_id, 1) for migration_id in expected]

    outputs = []
    for process in (first, second):
        process.terminate()
        outputs.append(process.communicate(timeout=30)[0])
    appliers = [output for output in outputs if "applied migrations" in output]
    assert len(appliers) == 1, outputs


# --- sessions across processes ------------------------------------------------------------------

HIDDEN_INPUT = re.compile(r"<input[^>]*type=\"hidden\"[^>]*>")


def submit(session: requests.Session, base: str, path: str, fields: dict[str, str]) -> requests.Response:
    """Posts a form the way a browser does: with the page's hidden fields and a same-origin header."""
    page = session.get(base + path, timeout=10)
    for tag in HIDDEN_INPUT.findall(page.text):
        name, value = re.search(r'name="([^"]*)"', tag), re.search(r'value="([^"]*)"', tag)
        if name:
            fields.setdefault(html.unescape(name.group(1)), html.unescape(value.group(1)) if value else "")
    return session.post(base + path, data=fields, headers={"Origin": base, "Referer": base + path}, timeout=10)


def signed_in_as(session: requests.Session, base: str) -> str | None:
    """The username the navigation shows as signed in, if any."""
    match = re.search(r"sign out \[([^\]]*)\]", session.get(base + "/", timeout=10).text)
    return html.unescape(match.group(1)) if match else None


def test_a_session_survives_other_processes_and_restarts(server_process_factory, database_url: str) -> None:
    secret = {"SECRET_KEY": secrets.token_urlsafe(48)}
    first, first_url = server_process_factory(database_url, env=secret)
    _, second_url = server_process_factory(database_url, env=secret)

    browser = requests.Session()
    fields = {"username": "carol", "email": "carol@example.com", "password": "pw", "password2": "pw"}
    assert submit(browser, first_url, "/register", fields).status_code == 200
    assert submit(browser, first_url, "/login", {"username": "carol", "password": "pw"}).status_code == 200
    assert signed_in_as(browser, first_url) == "carol"
    assert signed_in_as(browser, second_url) == "carol", "the other replica accepts the cookie"

    first.terminate()
    first.wait(30)
    _, restarted_url = server_process_factory(database_url, env=secret)
    assert signed_in_as(browser, restarted_url) == "carol", "the cookie outlives a restart"

    _, stranger_url = server_process_factory(database_url, env={"SECRET_KEY": secrets.token_urlsafe(48)})
    assert signed_in_as(browser, stranger_url) is None, "a server with another secret must not accept it"


# --- production mode ----------------------------------------------------------------------------


@pytest.fixture
def production_env(tmp_path: Path, database_url: str) -> Iterator[dict[str, str]]:
    """A complete production configuration, secrets given as files (Docker/Swarm secrets)."""
    secret_file, password_file = tmp_path / "secret_key", tmp_path / "simulator_password"
    secret_file.write_text(secrets.token_urlsafe(48) + "\n")
    password_file.write_text(DEV_SIMULATOR_PASSWORD + "\n")  # the course's published one, set on purpose
    data_dir = tmp_path / "data"
    try:
        yield clean_environment(
            data_dir, MINITWIT_ENV="production", DATABASE_URL=database_url, SECRET_KEY_FILE=str(secret_file),
            METRICS_TOKEN=secrets.token_urlsafe(24), SIMULATOR_USERNAME=DEV_SIMULATOR_USERNAME,
            SIMULATOR_PASSWORD_FILE=str(password_file), MINITWIT_ALLOWED_HOSTS="127.0.0.1,localhost",
        )
    finally:
        stop_leftover_postgres(data_dir)  # only if a broken refusal started the embedded database


WITHOUT = object()


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("SECRET_KEY_FILE", WITHOUT, "SECRET_KEY"),
        ("SECRET_KEY_FILE", "", "SECRET_KEY"),
        ("SECRET_KEY", "too-short-for-a-key", "SECRET_KEY"),
        ("SECRET_KEY", DEV_SECRET_KEY, "SECRET_KEY"),
        ("DATABASE_URL", WITHOUT, "DATABASE_URL"),
        ("METRICS_TOKEN", WITHOUT, "METRICS_TOKEN"),
        ("MINITWIT_ALLOWED_HOSTS", WITHOUT, "MINITWIT_ALLOWED_HOSTS"),
        ("SIMULATOR_PASSWORD_FILE", WITHOUT, "SIMULATOR_PASSWORD must be set explicitly"),
        ("SIMULATOR_USERNAME", WITHOUT, "SIMULATOR_USERNAME must be set explicitly"),
    ],
    ids=["no-secret-key", "empty-secret-key", "short-secret-key", "dev-secret-key", "no-database-url",
         "no-metrics-token", "no-allowed-hosts", "no-simulator-password", "no-simulator-username"],
)
def test_production_refuses_development_defaults(
    production_env: dict[str, str], variable: str, value: object, complaint: str
) -> None:
    environment = dict(production_env)
    if value is WITHOUT:
        environment.pop(variable)
    else:
        environment.pop("SECRET_KEY_FILE", None)
        environment[variable] = str(value)
    done = subprocess.run(
        [sys.executable, "-m", "minitwit", "serve", "--port", str(free_port())],
        env=environment, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "refusing to start in production mode" in done.stderr and complaint in done.stderr, done.stderr


def test_production_starts_when_everything_is_given(
    production_env: dict[str, str], server_process_factory, database_url: str
) -> None:
    process, url = server_process_factory(database_url, env=production_env)
    assert requests.get(url + "/ready", timeout=10).status_code == 200
    assert process.poll() is None


# --- no secret in the repository ----------------------------------------------------------------

# Values that may appear: published development defaults, refused by MINITWIT_ENV=production.
ALLOWED_VALUES = {
    DEV_SECRET_KEY,
    DEV_SIMULATOR_PASSWORD,  # the course simulator's public credential
}
ALLOWED_BASIC_AUTH = {
    f"{DEV_SIMULATOR_USERNAME}:{DEV_SIMULATOR_PASSWORD}",
    "wrong:wrong",  # tests/test_api.py's deliberately wrong credential
}
# Reserved names (RFC 2606) never reach a real deployment: credentials for them are examples.
EXAMPLE_HOST = re.compile(r"(?i)^(?:[\w-]+\.)*(?:example(?:\.(?:com|org|net))?|invalid|test)(?::\d+)?$")
CONFIG_FILES = ("*.yml", "*.yaml", "*.env", ".env*", "*.ini", "*.cfg", "*.toml", "*.conf", "*.json",
                "Dockerfile*", "*.dockerfile", "*.properties")

ANYWHERE = {
    "a private key": re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----"),
    "an AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "an AWS secret access key": re.compile(r"(?i)aws_secret_access_key\W{1,4}[A-Za-z0-9/+]{40}"),
    "a GitHub token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})"),
    "a Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "a Sentry DSN key": re.compile(r"https?://[0-9a-f]{32}(?::[0-9a-f]{32})?@[\w.-]*sentry\.io"),
}
URL_CREDENTIAL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s:/@'\"]+:(?P<value>[^\s@/'\"]+)@(?P<host>[^\s/?'\"]*)")
BASIC_AUTH = re.compile(r"\bBasic\s+(?P<value>[A-Za-z0-9+/]{8,}={0,2})")
ASSIGNMENT = re.compile(
    r"(?i)(?P<key>[\w.-]*(?:password|passwd|secret|token|api_?key|access_?key|dsn|credentials?)[\w.-]*)"
    r"[\"']?\s*[:=]\s*(?P<value>\"[^\"]*\"|'[^']*'|[^\s#,}\]]+)?"
)


DOCUMENTATION_PLACEHOLDER = re.compile(r"^(?:[A-Z][A-Z0-9_]*|password|secret|pass|pw)$")


def _placeholder(value: str) -> bool:
    """A reference to a value kept elsewhere (environment, secret file, template), or a word that
    stands for one in documentation (PASSWORD, password), not a value."""
    return value == "" or value.startswith(("$", "<", "{{", "/run/secrets/", "./secrets/", "secrets.")) or value in (
        "true", "false", "null", "~", "required", "optional") or bool(DOCUMENTATION_PLACEHOLDER.match(value))


def scan(path: str, text: str) -> list[str]:
    """Every line of one file that looks like it holds a real secret, as 'path:line: what'."""
    config = any(fnmatch(Path(path).name, pattern) for pattern in CONFIG_FILES)
    hits = []
    for number, line in enumerate(text.splitlines(), start=1):
        found = [what for what, pattern in ANYWHERE.items() if pattern.search(line)]
        for match in URL_CREDENTIAL.finditer(line):
            if not (_placeholder(match["value"]) or match["value"] in ALLOWED_VALUES
                    or EXAMPLE_HOST.match(match["host"])):
                found.append("a password in a URL")
        for match in BASIC_AUTH.finditer(line):
            try:
                decoded = base64.b64decode(match["value"], validate=True).decode()
            except ValueError:
                continue
            if ":" in decoded and decoded not in ALLOWED_BASIC_AUTH:
                found.append("a Basic auth credential")
        if config and not line.lstrip().startswith("#"):  # comments describe secrets, they hold none
            for match in ASSIGNMENT.finditer(line):
                if line[max(0, match.start() - 2):match.start()] == "${":
                    continue  # ${VAR:?message}: compose interpolation, the value comes from the environment
                value = (match["value"] or "").strip("\"'")
                if match["key"].lower().endswith("_file") or _placeholder(value) or value in ALLOWED_VALUES:
                    continue
                found.append(f"a literal value for {match['key']}")
        hits += [f"{path}:{number}: {what}" for what in found]
    return hits


def repository_files() -> list[str]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=REPO_ROOT, capture_output=True, text=True, check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: nothing to list")
    return [name for name in listed if (REPO_ROOT / name).is_file()]


def test_no_secret_in_the_repository() -> None:
    hits = []
    files = repository_files()
    assert "src/minitwit/settings.py" in files
    for name in files:
        try:
            text = (REPO_ROOT / name).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary
        hits += scan(name, text)
    assert hits == [], "secrets in tracked files (or extend ALLOWED_VALUES in this test):\n" + "\n".join(hits)


def test_the_secret_scan_finds_what_it_looks_for() -> None:
    """The scanner itself, on planted samples (built from pieces so that this file stays clean)."""
    key_id = "AKIA" + "IOSFODNN7" + "EXAMPLE"
    planted = {
        "deploy/key.pem": "-----BEGIN " + "OPENSSH PRIVATE KEY-----",
        "notes.md": f"aws key {key_id}",
        "ci.sh": "export GH=ghp_" + "a1B2" * 9,
        "compose.yml": "      POSTGRES_PASSWORD: " + "hunter2hunter2",
        "stack.yaml": "  - DATABASE_URL=postgresql://minitwit:" + "Xy9zQ@db:5432/minitwit",
        "settings.toml": 'api_key = "' + "0123456789abcdef" + '"',
        "client.py": 'headers = {"Authorization": "Basic ' + base64.b64encode(b"admin:letmein").decode() + '"}',
    }
    for path, text in planted.items():
        assert scan(path, text), f"missed the secret planted in {path}"

    fine = {
        "compose.yml": "      POSTGRES_PASSWORD_FILE: /run/secrets/db_password\n"
                       "      SECRET_KEY: ${SECRET_KEY:?set it}\n      password: ${{ secrets.REGISTRY_TOKEN }}",
        "stack.yml": "secrets:\n  secret_key:\n    external: true",
        "app.py": "password = fields.get('password', '')",
        "tests/fixtures.py": 'SIMULATOR_AUTH = "Basic '
                             + base64.b64encode(f"{DEV_SIMULATOR_USERNAME}:{DEV_SIMULATOR_PASSWORD}".encode()).decode()
                             + '"',
        "README.md": "DATABASE_URL=postgresql://minitwit:${DB_PASSWORD}@db/minitwit\n"
                     "e.g. postgresql://user:" + "pass@db.example.com:5432/minitwit",
    }
    for path, text in fine.items():
        assert scan(path, text) == [], f"false alarm in {path}"
