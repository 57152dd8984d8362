"""The simulator's writes: each is one statement that also records the simulator's latest action
id, so a tweet, follow or unfollow costs one round trip and one commit (sql/simulator.sql).

The rules are those of the web's handlers (accounts.post_message, follows.follow/unfollow); only
the users are named, not ids, and ``latest`` (None: nothing to record) rides along.
"""

from __future__ import annotations

from minitwit.db import Row, Session
from minitwit.errors import InvalidInput, UnknownUser, require_possible_username
from minitwit.follows import SELF_FOLLOW
from minitwit.validation import validate_message


async def post_message(db: Session, username: str, text: str, latest: int | None) -> int:
    """Posts ``text`` as ``username``; returns the message id."""
    require_possible_username(username)
    error = validate_message(text)
    if error:
        raise InvalidInput(error)
    message_id = await db.fetch_value("simulator_post_message", username=username, text=text, latest=latest)
    if message_id is None:
        raise UnknownUser(username)
    return int(message_id)


async def follow(db: Session, username: str, target: str, latest: int | None) -> None:
    """``username`` follows ``target``; already following changes nothing."""
    require_possible_username(username, target)
    row = await db.fetch_one("simulator_follow", username=username, target=target, latest=latest)
    _check_pair(row, username, target)
    if row["follower_id"] == row["followed_id"]:  # type: ignore[index]  # checked above
        raise InvalidInput(SELF_FOLLOW)


async def unfollow(db: Session, username: str, target: str, latest: int | None) -> None:
    """``username`` stops following ``target``; not following changes nothing."""
    require_possible_username(username, target)
    row = await db.fetch_one("simulator_unfollow", username=username, target=target, latest=latest)
    _check_pair(row, username, target)


def _check_pair(row: Row | None, username: str, target: str) -> None:
    assert row is not None, "the statement always yields one row"
    if row["follower_id"] is None:
        raise UnknownUser(username)
    if row["followed_id"] is None:
        raise UnknownUser(target)
