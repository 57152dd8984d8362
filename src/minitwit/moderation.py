"""Moderation, the successor of the original MiniTwit's flag_tool.

``minitwit flag ID...`` hides messages from every page and API answer (every timeline query
reads only unflagged rows), ``minitwit unflag ID...`` shows them again, and
``minitwit flag --list`` lists what is hidden; ``minitwit flag --user NAME`` shows the ids of a
user's newest visible messages.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from minitwit import accounts, migrations, timelines
from minitwit.db import Database, Row, Session
from minitwit.errors import UnknownUser
from minitwit.models import Message
from minitwit.runtime import database_url
from minitwit.settings import Settings
from minitwit.templating import datetimeformat

T = TypeVar("T")
BIGINT_MAX = 2**63 - 1


async def set_flagged(db: Session, message_id: int, flagged: bool) -> Row | None:
    """Flags or unflags a message; returns it (with author), or None when there is no such message."""
    return await db.fetch_one("set_message_flagged", message_id=message_id, flagged=flagged)


async def flagged_messages(db: Session) -> list[Row]:
    return await db.fetch_all("flagged_messages")


def describe(row: Row | dict) -> str:
    text = row["text"] if len(row["text"]) <= 70 else row["text"][:69] + "…"
    return f"{row['message_id']}  {datetimeformat(row['pub_date'])}  {row['username']}: {text!r}"


def message_id(value: str) -> int:
    """argparse type: a message id (a positive bigint)."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 0 < number <= BIGINT_MAX:
        raise argparse.ArgumentTypeError(f"{value!r} is not a message id")
    return number


def with_session(settings: Settings, work: Callable[[Session], Awaitable[T]]) -> T:
    """Runs ``work`` on one connection to the configured (migrated) database."""

    async def run(url: str) -> T:
        async with Database.single_session(url) as db:
            return await work(db)

    with database_url(settings) as url:
        migrations.apply(url)
        return asyncio.run(run(url))


def change_flags(settings: Settings, ids: list[int], flagged: bool) -> int:
    async def work(db: Session) -> list[tuple[int, Row | None]]:
        return [(number, await set_flagged(db, number, flagged)) for number in ids]

    missing = 0
    for number, row in with_session(settings, work):
        if row is None:
            missing += 1
            print(f"message {number}: no such message", file=sys.stderr)
        else:
            print(f"{'flagged' if flagged else 'unflagged'} {describe(row)}")
    return 1 if missing else 0


def user_messages(username: str) -> Callable[[Session], Awaitable[list[Message]]]:
    async def work(db: Session) -> list[Message]:
        return (await timelines.user_timeline(db, await accounts.user_id_of(db, username))).messages

    return work


def flag(settings: Settings, args: argparse.Namespace) -> int:
    """Flags the given messages, or lists the flagged ones (or a user's, to find their ids)."""
    if args.user is not None:
        try:
            messages = with_session(settings, user_messages(args.user))
        except UnknownUser as error:
            print(f"minitwit flag: {error.message}", file=sys.stderr)
            return 1
        for message in messages:
            print(describe({"message_id": message.message_id, "pub_date": message.pub_date,
                            "username": message.username, "text": message.text}))
        return 0
    if args.list:
        rows = with_session(settings, flagged_messages)
        for row in rows:
            print(describe(row))
        print(f"{len(rows)} flagged message{'s' if len(rows) != 1 else ''}")
        return 0
    if not args.ids:
        print("minitwit flag: give message ids, or --list", file=sys.stderr)
        return 2
    return change_flags(settings, args.ids, True)


def unflag(settings: Settings, args: argparse.Namespace) -> int:
    """Unflags the given messages."""
    return change_flags(settings, args.ids, False)


def add_commands(commands: argparse._SubParsersAction) -> None:
    flag_parser = commands.add_parser("flag", help="hide messages from every page and API answer")
    flag_parser.add_argument("ids", nargs="*", type=message_id, metavar="MESSAGE_ID")
    flag_parser.add_argument("--list", action="store_true", help="list the flagged messages instead")
    flag_parser.add_argument("--user", metavar="USERNAME", help="list a user's newest visible messages and their ids")
    flag_parser.set_defaults(run=flag)
    unflag_parser = commands.add_parser("unflag", help="show flagged messages again")
    unflag_parser.add_argument("ids", nargs="+", type=message_id, metavar="MESSAGE_ID")
    unflag_parser.set_defaults(run=unflag)
