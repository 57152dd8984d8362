"""Usernames: compared as people read them (minitwit.usernames), and linked so that no name can
forge a URL (security.UsernameConvertor, security.routing_path)."""

from __future__ import annotations

import asyncio
import re
import unicodedata
from html import unescape

import pytest
from fixtures import LiveServer, sql
from markupsafe import escape
from security_helpers import api_register, sign_up, signed_in

from minitwit import usernames
from minitwit.db import Database
from minitwit.security import routing_path

TAKEN = "The username is already taken"
FULL_WIDTH = "\uff56\uff49\uff43\uff54\uff49\uff4d"  # "victim" in full-width letters

# Names that break a link unless each is encoded as one path segment.
LINK_BREAKERS = ["x%2Ffollow", "y/follow", "what?follow", "hash#follow", "two words", "plus+sign", "100%", "%25"]


@pytest.mark.parametrize(
    "name, same_as",
    [("Victim", "victim"), (FULL_WIDTH, "victim"), ("v\u0456ctim", "victim"), ("VICTIM", "victim"),
     ("paypa1", "paypal"), ("rn", "m")],
)
def test_look_alikes_share_a_key(name: str, same_as: str) -> None:
    assert usernames.username_key(name) == usernames.username_key(same_as)


@pytest.mark.parametrize("name, other", [("alice", "alicia"), ("bob", "b0b2"), ("Jane Doe", "JaneDoe")])
def test_different_names_have_different_keys(name: str, other: str) -> None:
    assert usernames.username_key(name) != usernames.username_key(other)


def test_huge_expansions_keep_the_key_small(server: LiveServer) -> None:
    """NFKC makes U+FDFA eighteen letters: such names must not break the index or the throttle."""
    expanded = unicodedata.normalize("NFKC", "\ufdfa")
    assert len(expanded) == 18 and len(usernames.username_key("\ufdfa" * 64)) <= usernames.MAX_KEY_BYTES
    assert "You were successfully registered" in sign_up(server, "\ufdfa" * 20).text
    assert TAKEN in sign_up(server, "\ufdfa" * 19 + expanded).text  # hashed keys still compare
    assert "Invalid username" in server.post("/login", data={"username": "\ufdfa" * 64, "password": "x"}).text


@pytest.mark.parametrize("char", ["\u2800", "\u3164", "\u115f", "\u200b", "\u00ad", "\ufeff", "\u00a0", "\u3000",
                                  "\U000e0041"])
def test_invisible_characters_are_found(char: str) -> None:
    assert usernames.invisible_problem(f"vic{char}tim") == usernames.INVISIBLE
    assert usernames.invisible_problem("Jane Doe") is None  # a plain space is fine (the simulator's names)


@pytest.mark.parametrize("look_alike", ["Victim", FULL_WIDTH, "v\u0456ctim", "VICTIM"])
def test_look_alikes_of_an_existing_name_are_taken(server: LiveServer, look_alike: str) -> None:
    """Acceptance: once `victim` exists, its look-alikes are refused, in the form and the API."""
    assert "You were successfully registered" in sign_up(server, "victim").text
    assert TAKEN in sign_up(server, look_alike).text
    anonymous = server.post("/register", json={"username": look_alike, "email": "v@example.com", "pwd": "x"})
    assert anonymous.status_code == 400 and anonymous.json()["error_msg"] == TAKEN
    assert sql(server.database_url, "SELECT username FROM users") == [("victim",)]


@pytest.mark.parametrize("name", ["vic\u2800tim", "\u3164", "a\u200bb", "no\u00a0break"])
def test_invisible_characters_are_refused(server: LiveServer, name: str) -> None:
    page = sign_up(server, name).text  # format characters (U+200B) are refused as control characters
    assert usernames.INVISIBLE in page or "may not contain control characters" in page
    assert sql(server.database_url, "SELECT count(*) FROM users") == [(0,)]


def test_the_simulator_keeps_its_contract(server: LiveServer) -> None:
    """With the credential only the exact name is taken: the simulator's names keep working."""
    assert api_register(server, "Kem").status_code == 204
    assert api_register(server, "Kern").status_code == 204  # "rn" reads as "m", yet both exist
    assert api_register(server, "Kern").status_code == 400  # the exact name is still taken
    rows = sql(server.database_url, "SELECT username, username_key FROM users ORDER BY user_id")
    key = usernames.username_key("Kem")
    assert rows[0] == ("Kem", key) and rows[1][0] == "Kern" and rows[1][1].startswith(key + "\x1f")
    assert TAKEN in sign_up(server, "KERN").text  # and nobody else gets a third look-alike


def test_keys_of_old_names_are_filled_and_collisions_reported(database_url: str) -> None:
    """Names made before the keys (or by a legacy import) keep their names; the ones that read
    like an earlier account's are reported."""
    for name in ("Alice", "alice", "bob", "b\u043eb"):  # the last with a Cyrillic o (U+043E)
        sql(database_url, "INSERT INTO users (username, email, pw_hash) VALUES (%s, 'a@b.c', 'x')", name)

    async def fill() -> list[str]:
        database = Database(database_url, pool_size=1)
        await database.connect()
        try:
            async with database.session() as db:
                return await usernames.fill_missing_keys(db)
        finally:
            await database.disconnect()

    assert asyncio.run(fill()) == ["alice", "b\u043eb"]
    assert asyncio.run(fill()) == []  # nothing left to do
    assert sql(database_url, "SELECT count(*) FROM users WHERE username_key IS NULL") == [(0,)]


@pytest.mark.parametrize(
    "raw, routed",
    [(b"/x%252Ffollow", "/x%252Ffollow"), (b"/x%2Ffollow", "/x%2Ffollow"), (b"/a%20b/follow", "/a b/follow"),
     (b"/%E2%82%AC", "/\u20ac"), (b"/100%", "/100%25")],
)
def test_the_router_sees_encoded_slashes_still_encoded(raw: bytes, routed: str) -> None:
    assert routing_path(raw) == routed


def test_every_name_links_to_its_own_page(server: LiveServer) -> None:
    """Acceptance: names with % / ? # space + in /public each link to that user's page, and
    following the link (signed in) follows nobody."""
    for name in LINK_BREAKERS:  # "/" cannot be chosen at sign-up; an old account may have one
        sql(server.database_url, "WITH u AS (INSERT INTO users (username, email, pw_hash) "
                                 "VALUES (%s, 'a@b.c', 'x') RETURNING user_id) "
                                 "INSERT INTO messages (author_id, text) SELECT user_id, 'hello' FROM u", name)
    sql(server.database_url, "INSERT INTO users (username, email, pw_hash) VALUES ('x', 'x@b.c', 'x')")
    session = signed_in(server, "reader")
    page = session.get(server.url + "/public", timeout=10).text
    links = {unescape(text): unescape(href) for href, text in re.findall(r'<a href="([^"]+)">([^<]+)</a>', page)}
    for name in LINK_BREAKERS:
        href = links[str(escape(name))] if str(escape(name)) in links else links[name]
        assert href.startswith("/") and href.count("/") == 1 and not set("?# ") & set(href), href
        response = session.get(server.url + href, timeout=10, allow_redirects=False)
        assert response.status_code == 200, (name, href)
        assert f"{escape(name)}'s Timeline" in response.text
        assert "You are not yet following this user" in response.text
    assert sql(server.database_url, "SELECT count(*) FROM follows") == [(0,)]


def test_follow_redirects_stay_on_the_user(server: LiveServer) -> None:
    sql(server.database_url, "INSERT INTO users (username, email, pw_hash) VALUES ('a/b?c', 'a@b.c', 'x')")
    session = signed_in(server, "reader")
    response = session.post(server.url + "/a%2Fb%3Fc/follow", timeout=10, allow_redirects=False)
    assert response.status_code == 302 and response.headers["location"] == "/a%2Fb%3Fc"
    assert "You are now following &#34;a/b?c&#34;" in session.get(server.url + "/a%2Fb%3Fc", timeout=10).text
    assert sql(server.database_url, "SELECT count(*) FROM follows") == [(1,)]
