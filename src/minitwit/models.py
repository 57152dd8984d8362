"""The values handlers return: plain data, no HTML or JSON."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Message:
    message_id: int
    text: str
    pub_date: datetime
    username: str
    email: str


@dataclass(frozen=True, slots=True)
class User:
    user_id: int
    username: str
    email: str


@dataclass(frozen=True, slots=True)
class Timeline:
    """One page of messages, newest first, and the cursor for the page of older ones."""

    messages: list[Message]
    older_than: int | None  # message_id to pass as ?before= for the next page; None on the last
