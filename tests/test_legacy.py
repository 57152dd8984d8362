"""`minitwit import-legacy`: a database of the original MiniTwit, imported into PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from fixtures import LiveServer, sql
from security_helpers import API_HEADERS, sign_in, sign_up
from werkzeug.security import generate_password_hash

from minitwit import legacy_passwords, passwords
from minitwit.cli import main

SCHEMA = Path(__file__).with_name("legacy_schema.sql")
PUB_DATE = 1_234_567_890  # 2009-02-13 23:31:30 UTC

USERS = [  # (user_id, username, email, password, werkzeug method)
    (1, "alice", "alice@example.com", "alice-old-pw", "pbkdf2:sha256:600000"),  # werkzeug 2.x default
    (2, "bob", "bob@example.com", "bob-old-pw", "scrypt"),  # werkzeug 3.x default
    (3, "public", "p@example.com", "x", "pbkdf2:sha256:1000"),  # a page of the site: skipped
    (4, "carol", "carol@example.com", "carol-old-pw", "pbkdf2:sha1:1000"),
    (5, "alice", "alice2@example.com", "x", "pbkdf2:sha256:1000"),  # same username again: skipped
    (6, "taken", "t@example.com", "x", "pbkdf2:sha256:1000"),  # signed up here already: skipped
    (7, "dave", "no-email", "x", "pbkdf2:sha256:1000"),  # invalid email: skipped
    (8, 1234, "numbers@example.com", "x", "pbkdf2:sha256:1000"),  # SQLite's numeric affinity
]
MESSAGES = [  # (message_id, author_id, text, pub_date, flagged)
    (1, 1, "hello from 2009", PUB_DATE, 0),
    (2, 1, "a moderated message", PUB_DATE + 60, 1),
    (3, 2, "bob was here <b>", PUB_DATE + 120, None),
    (4, 4, "42", PUB_DATE + 180, 0),  # stored as the integer 42
    (5, 99, "by nobody", PUB_DATE, 0),  # orphan
    (6, 3, "by a skipped user", PUB_DATE, 0),
    (7, 1, "", PUB_DATE, 0),  # empty: skipped
    (8, 1, "x" * 1001, PUB_DATE, 0),  # too long: skipped
    (9, 2, "no date", None, 0),  # skipped
]
FOLLOWS = [(1, 2), (1, 2), (2, 1), (1, 1), (1, 99), (4, 3), (1, 4)]


def build_legacy_database(path: Path) -> Path:
    connection = sqlite3.connect(path)
    connection.executescript(SCHEMA.read_text())
    connection.executemany("insert into user values (?, ?, ?, ?)", [
        (user_id, name, email, generate_password_hash(password, method=method))
        for user_id, name, email, password, method in USERS
    ])
    connection.executemany("insert into message values (?, ?, ?, ?, ?)", MESSAGES)
    connection.executemany("insert into follower values (?, ?)", FOLLOWS)
    connection.commit()
    connection.close()
    return path


@pytest.fixture(scope="module")
def legacy_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_legacy_database(tmp_path_factory.mktemp("legacy") / "minitwit.db")


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, url: str, *args: str) -> tuple[int, str, str]:
    monkeypatch.setenv("DATABASE_URL", url)
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(url: str) -> list[list[tuple]]:
    return [
        sql(url, "SELECT user_id, username, email, pw_hash, legacy_user_id FROM users ORDER BY user_id"),
        sql(url, "SELECT message_id, author_id, text, pub_date, flagged, legacy_message_id FROM messages "
                 "ORDER BY message_id"),
        sql(url, "SELECT follower_id, followed_id FROM follows ORDER BY 1, 2"),
    ]


def test_werkzeug_hashes_are_verified_with_the_standard_library() -> None:
    for method in ("pbkdf2:sha256:1000", "pbkdf2:sha512:2000", "pbkdf2:sha1:1000", "scrypt:16384:8:1", "scrypt"):
        pw_hash = generate_password_hash("pässword", method=method)
        assert legacy_passwords.is_legacy_hash(pw_hash)
        assert passwords.verify_password_sync(pw_hash, "pässword"), method
        assert not passwords.verify_password_sync(pw_hash, "password"), method
        assert passwords.needs_rehash(pw_hash)
    for broken in ("pbkdf2:sha256:1000$salt", "pbkdf2:nohash:1$s$00", "pbkdf2:sha256:x$s$00",
                   "scrypt:3:8:1$s$00", "scrypt:1048576:64:64$s$00", "pbkdf2:sha256:99999999999$s$00",
                   "plain$$secret", "md5$x$y", "pbkdf2:sha256:1$s$ü"):
        assert not passwords.verify_password_sync(broken, "secret"), broken


def test_import_reports_and_is_idempotent(legacy_db: Path, database_url: str, monkeypatch, capsys) -> None:
    sql(database_url, "INSERT INTO users (username, email, pw_hash) VALUES ('taken', 't@here.example', 'h')")
    code, out, _ = run_cli(monkeypatch, capsys, database_url, "import-legacy", str(legacy_db))
    assert code == 0, out
    assert "users:    4 imported, 0 already present, 4 skipped" in out
    assert "messages: 4 imported, 0 already present, 5 skipped" in out
    assert "follows:  3 imported, 0 already present, 3 skipped, 1 duplicate rows folded" in out
    assert "orphan rows (naming a user the legacy database does not have): 2" in out
    for problem in ("user 3 'public'", "user 5 'alice': an earlier legacy user",
                    "user 6 'taken': the username belongs to an account of this site", "user 7 'dave'",
                    "message 5: its author 99", "message 9: pub_date None", "follow 1 -> 1", "follow 4 -> 3"):
        assert problem in out, problem
    first = snapshot(database_url)
    users = {row[1]: row for row in first[0]}
    assert set(users) == {"alice", "bob", "carol", "1234", "taken"}
    assert users["alice"][3].startswith("pbkdf2:sha256:600000$") and users["alice"][4] == 1
    messages = {row[5]: row for row in first[1]}
    assert set(messages) == {1, 2, 3, 4}
    assert messages[4][2] == "42" and messages[2][4] is True and messages[3][4] is False
    assert int(messages[1][3].timestamp()) == PUB_DATE
    ids = {name: row[0] for name, row in users.items()}
    assert set(first[2]) == {(ids["alice"], ids["bob"]), (ids["bob"], ids["alice"]), (ids["alice"], ids["carol"])}

    code, out, _ = run_cli(monkeypatch, capsys, database_url, "import-legacy", str(legacy_db))
    assert code == 0
    assert "users:    0 imported, 4 already present, 4 skipped" in out
    assert "messages: 0 imported, 4 already present, 5 skipped" in out
    assert "follows:  0 imported, 3 already present" in out
    assert snapshot(database_url) == first


def test_a_second_import_does_not_undo_what_users_did_since(legacy_db: Path, database_url: str,
                                                            monkeypatch, capsys) -> None:
    run_cli(monkeypatch, capsys, database_url, "import-legacy", str(legacy_db))
    sql(database_url, "DELETE FROM follows")  # everybody unfollowed everybody
    sql(database_url, "UPDATE messages SET flagged = false")  # a moderator unflagged
    before = snapshot(database_url)
    assert run_cli(monkeypatch, capsys, database_url, "import-legacy", str(legacy_db))[0] == 0
    assert snapshot(database_url) == before


def test_legacy_users_sign_in_with_their_old_password(legacy_db: Path, server: LiveServer,
                                                      monkeypatch, capsys) -> None:
    run_cli(monkeypatch, capsys, server.database_url, "import-legacy", str(legacy_db))
    stored = dict(sql(server.database_url, "SELECT username, pw_hash FROM users"))
    assert stored["bob"].startswith("scrypt:32768:8:1$")
    assert "Invalid password" in sign_in(server, "bob", "wrong")[0].text
    assert dict(sql(server.database_url, "SELECT username, pw_hash FROM users"))["bob"] == stored["bob"]
    for name, password in (("alice", "alice-old-pw"), ("bob", "bob-old-pw"), ("carol", "carol-old-pw")):
        response, _ = sign_in(server, name, password)
        assert "You were logged in" in response.text, name
        [(new_hash,)] = sql(server.database_url, "SELECT pw_hash FROM users WHERE username = %s", name)
        assert new_hash.startswith("$argon2id$") and not passwords.needs_rehash(new_hash)
        assert "You were logged in" in sign_in(server, name, password)[0].text  # and again, on Argon2id


def test_imported_messages_show_and_flagged_ones_do_not(legacy_db: Path, server: LiveServer,
                                                        monkeypatch, capsys) -> None:
    run_cli(monkeypatch, capsys, server.database_url, "import-legacy", str(legacy_db))
    public = server.get("/public").text
    assert "hello from 2009" in public and "2009-02-13 @ 23:31" in public
    assert "bob was here &lt;b&gt;" in public and "a moderated message" not in public
    api = server.get("/msgs/alice", headers=API_HEADERS).json()
    assert [message["content"] for message in api] == ["hello from 2009"]
    assert api[0]["pub_date"] == "2009-02-13T23:31:30+00:00"
    assert "sign up" in sign_up(server, "alice").text and "The username is already taken" in sign_up(server, "alice").text


def test_files_that_are_not_legacy_databases_are_refused(tmp_path: Path, database_url: str,
                                                         monkeypatch, capsys) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all, but long enough to have a header " * 10)
    for path in (tmp_path / "missing.db", empty, text):
        code, _, err = run_cli(monkeypatch, capsys, database_url, "import-legacy", str(path))
        assert code == 2 and "minitwit import-legacy:" in err, path
    assert sql(database_url, "SELECT count(*) FROM users")[0][0] == 0


def test_import_reports_the_look_alike_names_it_kept(legacy_db: Path, database_url: str, monkeypatch,
                                                     capsys) -> None:
    """Existing names stay as they are; a legacy name that reads like an account's is reported."""
    sql(database_url, "INSERT INTO users (username, email, pw_hash) VALUES ('CAROL', 'c@here.example', 'h')")
    code, out, _ = run_cli(monkeypatch, capsys, database_url, "import-legacy", str(legacy_db))
    assert code == 0, out
    assert "usernames kept although they read like another account's: 1\n  'carol'" in out
    assert sql(database_url, "SELECT count(*) FROM users WHERE username IN ('CAROL', 'carol')") == [(2,)]
    assert sql(database_url, "SELECT count(*) FROM users WHERE username_key IS NULL") == [(0,)]
