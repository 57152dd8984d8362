"""``minitwit backup`` and ``minitwit restore``, through the real command, on real databases.

The restore drill fills a database through the simulator API, backs it up while the server
runs, restores the dump into a brand-new database and compares every table's row count and
checksum (``make drill`` shows the figures).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cli_helpers import (
    minitwit,
    postgres_processes,
    stop_leftover_postgres,
    table_fingerprints,
    wait_for_no_postgres,
)
from fixtures import SIMULATOR_AUTH, LiveServer, scratch_database, sql, with_database

from minitwit import backup

HEADERS = {"Authorization": SIMULATOR_AUTH, "Content-Type": "application/json"}


def api(server: LiveServer, path: str, body: dict, latest: int) -> None:
    response = server.post(path, data=json.dumps(body), headers=HEADERS, params={"latest": latest})
    assert response.status_code == 204, response.text


def fill(server: LiveServer, users: int = 12, messages_each: int = 4) -> None:
    """Users, messages, follows and the latest action id, all through the simulator API."""
    action = 0
    names = [f"user{i:02d}" for i in range(users)]
    for name in names:
        action += 1
        api(server, "/register", {"username": name, "email": f"{name}@example.com", "pwd": "pw-" + name}, action)
    for i, name in enumerate(names):
        for n in range(messages_each):
            action += 1
            api(server, f"/msgs/{name}", {"content": f"message {n} from {name}: ünïcode, 'quotes', \\ and \t"}, action)
        for other in names[i + 1 : i + 4]:
            action += 1
            api(server, f"/fllws/{name}", {"follow": other}, action)
    action += 1
    api(server, f"/fllws/{names[0]}", {"unfollow": names[1]}, action)


def backup_into(directory: Path, url: str, tmp_path: Path, *extra: str) -> Path:
    done = minitwit("backup", "--dir", str(directory), *extra, data_dir=tmp_path / "unused", database_url=url)
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip())
    assert path.is_file() and path.parent == directory.resolve()
    return path


def restore(url: str | None, dump: Path, tmp_path: Path, *extra: str, data_dir: Path | None = None):
    return minitwit("restore", str(dump), *extra, data_dir=data_dir or tmp_path / "unused", database_url=url)


def report(title: str, source: dict[str, tuple[int, str]], restored: dict[str, tuple[int, str]]) -> None:
    print(f"\n{title}")
    header = f"{'table':<18} {'rows source':>11} {'rows restored':>13} {'lost':>5}  {'checksum (md5)':<34}"
    print(header + "equal")
    for table, (rows, digest) in source.items():
        rows_after, digest_after = restored.get(table, (0, "(missing)"))
        print(f"{table:<18} {rows:>11} {rows_after:>13} {rows - rows_after:>5}  {digest} {digest == digest_after}")


@pytest.fixture
def migrated_database_url(postgres_admin_url: str, template_database: str) -> Iterator[str]:
    """A second fresh, migrated, empty database (``database_url`` is taken by ``server``)."""
    with scratch_database(postgres_admin_url, "minitwit_other", template_database) as url:
        yield url


def test_restore_drill(server: LiveServer, empty_database_url: str, tmp_path: Path) -> None:
    """Fill through the API, back up while serving, restore into a new database: nothing lost."""
    fill(server)
    source = table_fingerprints(server.database_url)
    assert source["users"][0] == 12 and source["messages"][0] == 48 and source["follows"][0] > 20

    dump = backup_into(tmp_path / "backups", server.database_url, tmp_path)
    assert dump.stat().st_mode & 0o077 == 0, "a dump holds password hashes: owner-only"
    done = restore(empty_database_url, dump, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "users=12 messages=48" in done.stdout

    restored = table_fingerprints(empty_database_url)
    report(f"restore drill: {dump.name} ({dump.stat().st_size} bytes)", source, restored)
    assert {"users", "messages", "follows", "simulator_latest", "_yoyo_migration"} <= set(source)
    assert restored == source
    assert minitwit("migrate", "--check", data_dir=tmp_path / "unused", database_url=empty_database_url).returncode == 0
    # Identity sequences came along: a new row gets a fresh id, not one that collides.
    (new_id,) = sql(empty_database_url,
                    "INSERT INTO users (username, email, pw_hash) VALUES ('late', 'l@x.org', 'h') RETURNING user_id")[0]
    assert new_id > max(row[0] for row in sql(server.database_url, "SELECT user_id FROM users"))


def test_restore_refuses_a_database_with_data_unless_forced(
    server: LiveServer, empty_database_url: str, tmp_path: Path
) -> None:
    fill(server, users=4, messages_each=2)
    dump = backup_into(tmp_path / "backups", server.database_url, tmp_path)
    assert restore(empty_database_url, dump, tmp_path).returncode == 0
    sql(empty_database_url, "INSERT INTO users (username, email, pw_hash) VALUES ('intruder', 'i@x.org', 'h')")
    with_intruder = table_fingerprints(empty_database_url)

    refused = restore(empty_database_url, dump, tmp_path)
    assert refused.returncode == 1
    assert "refusing" in refused.stderr and "users=5" in refused.stderr and "--force" in refused.stderr
    assert table_fingerprints(empty_database_url) == with_intruder, "a refused restore must change nothing"

    forced = restore(empty_database_url, dump, tmp_path, "--force")
    assert forced.returncode == 0, forced.stderr
    assert table_fingerprints(empty_database_url) == table_fingerprints(server.database_url)


def test_restore_into_a_migrated_empty_database_needs_no_force(
    server: LiveServer, migrated_database_url: str, tmp_path: Path
) -> None:
    fill(server, users=3, messages_each=1)
    dump = backup_into(tmp_path / "backups", server.database_url, tmp_path)
    done = restore(migrated_database_url, dump, tmp_path)
    assert done.returncode == 0, done.stderr
    assert table_fingerprints(migrated_database_url) == table_fingerprints(server.database_url)


def test_restore_refuses_a_database_with_foreign_tables(
    server: LiveServer, empty_database_url: str, tmp_path: Path
) -> None:
    dump = backup_into(tmp_path / "backups", server.database_url, tmp_path)
    sql(empty_database_url, "CREATE TABLE invoices (id int)")
    refused = restore(empty_database_url, dump, tmp_path)
    assert refused.returncode == 1 and "no MiniTwit tables" in refused.stderr


def test_a_broken_dump_changes_nothing(database_url: str, tmp_path: Path) -> None:
    bogus = tmp_path / "minitwit-20260101T000000Z.dump"
    bogus.write_bytes(b"PGDMP but not really")
    sql(database_url, "INSERT INTO users (username, email, pw_hash) VALUES ('kept', 'k@x.org', 'h')")
    before = table_fingerprints(database_url)
    done = restore(database_url, bogus, tmp_path, "--force")
    assert done.returncode == 1 and "restore failed" in done.stderr
    assert table_fingerprints(database_url) == before


def test_a_failed_backup_leaves_nothing_behind(database_url: str, tmp_path: Path) -> None:
    directory = tmp_path / "backups"
    done = minitwit("backup", "--dir", str(directory), data_dir=tmp_path / "unused",
                    database_url=with_database(database_url, "no_such_database"))
    assert done.returncode == 1 and "backup failed" in done.stderr and "no_such_database" in done.stderr
    assert done.stdout == "" and list(directory.iterdir()) == []


def test_backup_while_the_server_takes_writes(server: LiveServer, empty_database_url: str, tmp_path: Path) -> None:
    """pg_dump reads one snapshot: the dump holds a consistent prefix of the messages being written."""
    fill(server, users=2, messages_each=1)
    stop, written = threading.Event(), list[int]()

    def writer() -> None:
        while not stop.is_set():
            api(server, "/msgs/user00", {"content": f"during backup {len(written)}"}, 1000 + len(written))
            written.append(1)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(written) < 5:
            stop.wait(0.05)
        dump = backup_into(tmp_path / "backups", server.database_url, tmp_path)
        written_before_end = len(written)
    finally:
        stop.set()
        thread.join(10)
    assert written_before_end > 5, "the writer must have kept writing while pg_dump ran"
    assert restore(empty_database_url, dump, tmp_path).returncode == 0

    restored = sql(empty_database_url, "SELECT message_id, author_id, text FROM messages ORDER BY message_id")
    last = restored[-1][0]
    expected = sql(server.database_url,
                   "SELECT message_id, author_id, text FROM messages WHERE message_id <= %s ORDER BY message_id", last)
    assert restored == expected
    assert 2 + 5 <= len(restored) <= 2 + len(written)


def test_backup_keeps_the_newest_n(database_url: str, tmp_path: Path) -> None:
    directory = tmp_path / "backups"
    directory.mkdir()
    (directory / "notes.txt").write_text("not a dump")
    (directory / "minitwit-manual.dump").write_text("not ours to prune")
    made = [backup_into(directory, database_url, tmp_path, "--keep", "2") for _ in range(3)]
    # BACKUP_DIR and BACKUP_KEEP stand in for the options.
    done = minitwit("backup", data_dir=tmp_path / "unused", database_url=database_url,
                    BACKUP_DIR=str(directory), BACKUP_KEEP="2")
    assert done.returncode == 0, done.stderr
    made.append(Path(done.stdout.strip()))

    assert len(set(made)) == 4, "backups within one second get distinct names"
    assert backup.dumps_in(directory) == made[-2:]
    assert {p.name for p in directory.iterdir()} == {made[-2].name, made[-1].name, "notes.txt", "minitwit-manual.dump"}
    assert not list(directory.glob(".*")), "no partial file is left behind"


def test_dumps_sort_by_time_then_sequence(tmp_path: Path) -> None:
    names = ["minitwit-20261128T071500Z-1.dump", "minitwit-20251231T235959Z.dump",
             "minitwit-20261128T071500Z.dump", "minitwit-20261128T071500Z-10.dump",
             "minitwit-20261128T071500Z-2.dump", "minitwit-2026.dump", "other.dump"]
    for name in names:
        (tmp_path / name).touch()
    assert [p.name for p in backup.prune(tmp_path, 2)] == [
        "minitwit-20251231T235959Z.dump", "minitwit-20261128T071500Z.dump", "minitwit-20261128T071500Z-1.dump"]
    assert [p.name for p in backup.dumps_in(tmp_path)] == [
        "minitwit-20261128T071500Z-2.dump", "minitwit-20261128T071500Z-10.dump"]


def test_write_dump_never_replaces_a_file(database_url: str, tmp_path: Path) -> None:
    moment = datetime(2026, 11, 28, 7, 15, tzinfo=UTC)
    first = backup.write_dump(database_url, tmp_path, now=moment)
    second = backup.write_dump(database_url, tmp_path, now=moment)
    assert (first.name, second.name) == ("minitwit-20261128T071500Z.dump", "minitwit-20261128T071500Z-1.dump")


def test_the_password_stays_off_the_command_line() -> None:
    url = "postgresql://minitwit:s3cr:t\\pw@db.example:5432/minitwit?sslmode=require"
    with backup.libpq_target(url) as (conninfo, environment):
        assert "s3cr" not in conninfo and "password" not in conninfo
        assert "host=db.example" in conninfo and "sslmode=require" in conninfo
        passfile = Path(environment["PGPASSFILE"])
        assert passfile.read_text() == "*:*:*:*:s3cr\\:t\\\\pw\n"
        assert passfile.stat().st_mode & 0o077 == 0
    assert not passfile.exists()


def test_round_trip_through_a_brand_new_embedded_database(
    embedded_dir: Path, server: LiveServer, empty_database_url: str, tmp_path: Path
) -> None:
    fill(server, users=5, messages_each=3)
    source = table_fingerprints(server.database_url)
    dump = backup_into(tmp_path / "backups", server.database_url, tmp_path)

    done = restore(None, dump, tmp_path, data_dir=embedded_dir)  # no DATABASE_URL: the embedded one
    assert done.returncode == 0, done.stderr
    assert "users=5 messages=15" in done.stdout
    assert minitwit("migrate", "--check", data_dir=embedded_dir).returncode == 0

    again = minitwit("backup", "--dir", str(tmp_path / "from-embedded"), data_dir=embedded_dir)
    assert again.returncode == 0, again.stderr
    assert restore(empty_database_url, Path(again.stdout.strip()), tmp_path).returncode == 0
    assert table_fingerprints(empty_database_url) == source
    assert wait_for_no_postgres(embedded_dir) == [], "every command stops the embedded PostgreSQL it started"


def test_backup_while_serving_on_the_embedded_database(
    embedded_dir: Path, server_process_factory, tmp_path: Path
) -> None:
    """A backup adopts the server's embedded PostgreSQL, and leaves it running when it is done."""
    process, url = server_process_factory(None, env={"MINITWIT_DATA_DIR": str(embedded_dir)})
    assert postgres_processes(embedded_dir)
    import requests

    assert requests.post(url + "/register", data=json.dumps({"username": "x", "email": "x@x.org", "pwd": "p"}),
                         headers=HEADERS, timeout=10).status_code == 204
    done = minitwit("backup", "--dir", str(tmp_path / "backups"), data_dir=embedded_dir)
    assert done.returncode == 0, done.stderr
    assert requests.get(url + "/ready", timeout=10).status_code == 200
    assert requests.get(url + "/fllws/x", headers=HEADERS, timeout=10).status_code == 200

    target = tmp_path / "restored"
    assert restore(None, Path(done.stdout.strip()), tmp_path, data_dir=target).returncode == 0
    try:
        assert wait_for_no_postgres(target) == []
    finally:
        stop_leftover_postgres(target)
    assert process.poll() is None


def parse_textfile(text: str) -> dict[str, float]:
    """The samples of a Prometheus text-format file (no labels in ours), HELP/TYPE checked."""
    samples, typed = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
        elif line and not line.startswith("#"):
            name, value = line.split()
            samples[name] = float(value)
    assert typed == samples.keys(), "every sample needs its TYPE line"
    return samples


def test_backup_writes_its_freshness_metrics(database_url: str, tmp_path: Path) -> None:
    """BACKUP_METRICS_PATH gets the finish time and size of the dump, readable by node_exporter."""
    metrics = tmp_path / "textfile" / "minitwit_backup.prom"
    started = datetime.now(UTC).timestamp()
    done = minitwit("backup", "--dir", str(tmp_path / "backups"), "--keep", "3", data_dir=tmp_path / "unused",
                    database_url=database_url, BACKUP_METRICS_PATH=str(metrics))
    assert done.returncode == 0, done.stderr
    dump = Path(done.stdout.strip())
    samples = parse_textfile(metrics.read_text())
    assert samples == {
        "minitwit_backup_last_success_timestamp_seconds": pytest.approx(dump.stat().st_mtime, abs=0.01),
        "minitwit_backup_last_size_bytes": dump.stat().st_size,
        "minitwit_backup_kept_dumps": 1,
    }
    assert started - 1 <= samples["minitwit_backup_last_success_timestamp_seconds"] <= datetime.now(UTC).timestamp()
    assert metrics.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in metrics.parent.iterdir()] == [metrics.name], "no temporary file left behind"

    second = backup_into(tmp_path / "backups", database_url, tmp_path, "--metrics-file", str(metrics))
    assert parse_textfile(metrics.read_text())["minitwit_backup_kept_dumps"] == 2
    assert parse_textfile(metrics.read_text())["minitwit_backup_last_size_bytes"] == second.stat().st_size


def test_a_failed_backup_leaves_the_last_success_in_place(database_url: str, tmp_path: Path) -> None:
    """The alert must see the last success age: a failure never rewrites (or removes) the file."""
    metrics = tmp_path / "minitwit_backup.prom"
    backup_into(tmp_path / "backups", database_url, tmp_path, "--metrics-file", str(metrics))
    before = metrics.read_bytes()
    failed = minitwit("backup", "--dir", str(tmp_path / "backups"), "--metrics-file", str(metrics),
                      data_dir=tmp_path / "unused", database_url=with_database(database_url, "no_such_database"))
    assert failed.returncode == 1
    assert metrics.read_bytes() == before
