"""Web sessions held on the server (minitwit.sessions): signing out and password changes end them."""

from __future__ import annotations

import asyncio

import requests
from fixtures import LiveServer, sql
from security_helpers import sign_in, signed_in

from minitwit import accounts
from minitwit.db import Database


def is_signed_in(session: requests.Session, server: LiveServer) -> bool:
    return "sign out" in session.get(server.url + "/public", timeout=10).text


def replay(cookies: dict[str, str], server: LiveServer) -> requests.Session:
    """A new client that sends a copied cookie, as a thief would."""
    session = requests.Session()
    session.cookies.update(cookies)
    return session


def test_a_cookie_replayed_after_sign_out_is_anonymous(server: LiveServer) -> None:
    """Acceptance: the cookie of a signed-out session signs nobody in any more."""
    session = signed_in(server, "alice")
    stolen = session.cookies.get_dict()
    assert is_signed_in(replay(stolen, server), server)
    session.post(server.url + "/logout", timeout=10)
    assert not is_signed_in(replay(stolen, server), server)
    assert sql(server.database_url, "SELECT count(*) FROM web_sessions") == [(0,)]


def test_signing_out_ends_only_that_session(server: LiveServer) -> None:
    laptop = signed_in(server, "alice")
    _, phone = sign_in(server, "alice")
    laptop.post(server.url + "/logout", timeout=10)
    assert not is_signed_in(laptop, server) and is_signed_in(phone, server)


def test_a_password_change_ends_every_session(server: LiveServer) -> None:
    laptop = signed_in(server, "alice")
    _, phone = sign_in(server, "alice")
    user_id = sql(server.database_url, "SELECT user_id FROM users WHERE username = 'alice'")[0][0]

    async def change() -> None:
        database = Database(server.database_url, pool_size=1)
        await database.connect()
        try:
            async with database.session() as db:
                await accounts.change_password(db, user_id, "new secret", "new secret")
        finally:
            await database.disconnect()

    asyncio.run(change())
    assert not is_signed_in(laptop, server) and not is_signed_in(phone, server)
    assert sign_in(server, "alice")[0].status_code == 200 and "Invalid password" in sign_in(server, "alice")[0].text
    assert "You were logged in" in sign_in(server, "alice", "new secret")[0].text


def test_only_a_hash_of_the_token_is_stored(server: LiveServer) -> None:
    signed_in(server, "alice")
    [(token_hash, days)] = sql(server.database_url,
                               "SELECT token_hash, extract(day FROM expires_at - created_at) FROM web_sessions")
    assert len(token_hash) == 32 and days == 14


def test_an_expired_session_is_anonymous(server: LiveServer) -> None:
    session = signed_in(server, "alice")
    sql(server.database_url, "UPDATE web_sessions SET expires_at = now() - interval '1 second'")
    assert not is_signed_in(session, server)
