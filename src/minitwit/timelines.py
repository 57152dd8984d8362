"""Timelines: the public one, a user's own, and a signed-in user's home timeline."""

from __future__ import annotations

from minitwit.db import Row, Session
from minitwit.errors import UnknownUser, require_possible_username
from minitwit.models import Message, Timeline

PAGE_SIZE = 30  # messages per web page
MAX_LIMIT = 10_000  # the API's ?no= is clamped to this, so one request cannot dump the table


def clamp_limit(requested: int) -> int:
    return max(0, min(requested, MAX_LIMIT))


def _page(rows: list[Row], limit: int) -> Timeline:
    messages = [
        Message(row["message_id"], row["text"], row["pub_date"], row["username"], row["email"])
        for row in rows
    ]
    full = limit > 0 and len(messages) == limit
    return Timeline(messages, messages[-1].message_id if full else None)


async def public_timeline(db: Session, *, limit: int = PAGE_SIZE, before: int | None = None) -> Timeline:
    """Everybody's messages."""
    rows = await db.fetch_all("public_timeline", before_id=before, limit=clamp_limit(limit))
    return _page(rows, limit)


async def user_timeline(
    db: Session, author_id: int, *, limit: int = PAGE_SIZE, before: int | None = None
) -> Timeline:
    """One author's messages."""
    rows = await db.fetch_all("user_timeline", author_id=author_id, before_id=before, limit=clamp_limit(limit))
    return _page(rows, limit)


async def public_timeline_json(db: Session, *, limit: int) -> str:
    """Everybody's newest messages as the API renders them, a JSON array that PostgreSQL writes
    (sql/messages.sql: the same messages and order as ``public_timeline``)."""
    return str(await db.fetch_value("public_timeline_json", limit=clamp_limit(limit)))


async def user_timeline_json_by_name(db: Session, username: str, *, limit: int) -> str:
    """One author's newest messages as the API's JSON array, the author given by name;
    UnknownUser when there is none."""
    require_possible_username(username)
    messages = await db.fetch_value("user_timeline_json_by_name", username=username, limit=clamp_limit(limit))
    if messages is None:
        raise UnknownUser(username)
    return str(messages)


async def home_timeline(
    db: Session, user_id: int, *, limit: int = PAGE_SIZE, before: int | None = None
) -> Timeline:
    """A user's own messages and those of the users they follow."""
    rows = await db.fetch_all("home_timeline", user_id=user_id, before_id=before, limit=clamp_limit(limit))
    return _page(rows, limit)
