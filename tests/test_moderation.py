"""`minitwit flag` / `unflag`: flagged messages vanish from every page and API answer."""

from __future__ import annotations

import pytest
from fixtures import LiveServer, sql
from security_helpers import API_HEADERS, api_register, api_tweet, signed_in

from minitwit.cli import main


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, url: str, *args: str):
    monkeypatch.setenv("DATABASE_URL", url)
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def everywhere(server: LiveServer, session) -> list[str]:
    """Every page and API answer a message can appear in."""
    return [
        server.get("/public").text, server.get("/bob").text, session.get(server.url + "/", timeout=10).text,
        server.get("/msgs", headers=API_HEADERS).text, server.get("/msgs/bob", headers=API_HEADERS).text,
    ]


def test_flag_hides_and_unflag_shows(server: LiveServer, monkeypatch, capsys) -> None:
    session = signed_in(server, "alice")
    api_register(server, "bob")
    session.get(server.url + "/bob/follow", timeout=10)
    api_tweet(server, "bob", "fine message")
    api_tweet(server, "bob", "spam spam spam")
    [(spam_id,)] = sql(server.database_url, "SELECT message_id FROM messages WHERE text = 'spam spam spam'")
    assert all("spam spam spam" in answer for answer in everywhere(server, session))

    code, out, _ = run_cli(monkeypatch, capsys, server.database_url, "flag", "--user", "bob")
    assert code == 0 and f"{spam_id}  " in out and "bob: 'spam spam spam'" in out
    code, out, _ = run_cli(monkeypatch, capsys, server.database_url, "flag", str(spam_id))
    assert code == 0 and out.startswith(f"flagged {spam_id}  ") and "bob: 'spam spam spam'" in out
    for answer in everywhere(server, session):
        assert "spam spam spam" not in answer and "fine message" in answer
    code, out, _ = run_cli(monkeypatch, capsys, server.database_url, "flag", "--list")
    assert code == 0 and "bob: 'spam spam spam'" in out and "1 flagged message" in out

    code, out, _ = run_cli(monkeypatch, capsys, server.database_url, "unflag", str(spam_id))
    assert code == 0 and out.startswith(f"unflagged {spam_id}  ")
    assert all("spam spam spam" in answer for answer in everywhere(server, session))
    assert "0 flagged messages" in run_cli(monkeypatch, capsys, server.database_url, "flag", "--list")[1]


def test_flagging_is_idempotent_and_reports_unknown_ids(database_url: str, monkeypatch, capsys) -> None:
    sql(database_url, "INSERT INTO users (username, email, pw_hash) VALUES ('bob', 'b@example.com', 'h')")
    [(message_id,)] = sql(database_url,
                          "INSERT INTO messages (author_id, text) SELECT user_id, 'x' FROM users RETURNING message_id")
    for _ in range(2):
        assert run_cli(monkeypatch, capsys, database_url, "flag", str(message_id))[0] == 0
    code, out, err = run_cli(monkeypatch, capsys, database_url, "flag", str(message_id), "999999")
    assert code == 1 and "message 999999: no such message" in err and f"flagged {message_id}" in out
    assert sql(database_url, "SELECT flagged FROM messages") == [(True,)]
    assert run_cli(monkeypatch, capsys, database_url, "flag")[0] == 2  # neither ids nor --list
    assert run_cli(monkeypatch, capsys, database_url, "flag", "--user", "nobody")[0] == 1
    for bad in ("abc", "0", "-3", str(2**63)):
        with pytest.raises(SystemExit) as exited:
            main(["flag", bad])
        assert exited.value.code == 2
