"""Follows: who follows whom."""

from __future__ import annotations

from minitwit.accounts import user_id_of
from minitwit.db import Session
from minitwit.errors import InvalidInput, UnknownUser, require_possible_username
from minitwit.timelines import clamp_limit

SELF_FOLLOW = "You cannot follow yourself"


async def follow(db: Session, follower_id: int, username: str) -> None:
    """``follower_id`` follows ``username``; already following changes nothing."""
    followed_id = await user_id_of(db, username)
    if followed_id == follower_id:
        raise InvalidInput(SELF_FOLLOW)
    await db.execute("follow", follower_id=follower_id, followed_id=followed_id)


async def unfollow(db: Session, follower_id: int, username: str) -> None:
    """``follower_id`` stops following ``username``; not following changes nothing."""
    followed_id = await user_id_of(db, username)
    await db.execute("unfollow", follower_id=follower_id, followed_id=followed_id)


async def is_following(db: Session, follower_id: int, followed_id: int) -> bool:
    return bool(await db.fetch_value("is_following", follower_id=follower_id, followed_id=followed_id))


async def followed_usernames_json_by_name(db: Session, username: str, *, limit: int = 100) -> str:
    """Whom ``username`` follows, as a JSON array of usernames that PostgreSQL writes;
    UnknownUser when there is no such user."""
    require_possible_username(username)
    usernames = await db.fetch_value("followed_usernames_json_by_name", username=username, limit=clamp_limit(limit))
    if usernames is None:
        raise UnknownUser(username)
    return str(usernames)
