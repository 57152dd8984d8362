"""Web sessions held on the server, so that they can end before their cookie does.

The signed session cookie (Starlette's SessionMiddleware) carries a random token; PostgreSQL
keeps the token's SHA-256 with the user (migrations/0006). Signing out deletes that row,
changing a password (``accounts.change_password``; no route offers it yet) deletes all of the
user's rows, and a cookie whose row is gone is anonymous.
A signed-in web request pays one indexed lookup (``session_user``); anonymous requests and the
simulator API pay nothing.
"""

from __future__ import annotations

import hashlib
import secrets

from minitwit.db import Session
from minitwit.models import User

MAX_AGE_SECONDS = 14 * 24 * 3600  # two weeks, the cookie's max-age too
PRUNE_EVERY = 200  # sign-ins per process between two prunes of expired sessions
_starts_since_prune = 0


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def start(db: Session, user_id: int) -> str:
    """A new session for ``user_id``; returns the token for the cookie."""
    global _starts_since_prune
    token = secrets.token_urlsafe(32)
    await db.execute("session_start", token_hash=token_hash(token), user_id=user_id,
                     max_age_seconds=MAX_AGE_SECONDS)
    _starts_since_prune += 1
    if _starts_since_prune >= PRUNE_EVERY:
        _starts_since_prune = 0
        await db.execute("sessions_prune")
    return token


async def user_of(db: Session, token: str) -> User | None:
    """The user the session with ``token`` signs in, or None when it has ended or expired."""
    row = await db.fetch_one("session_user", token_hash=token_hash(token))
    return None if row is None else User(row["user_id"], row["username"], "")


async def end(db: Session, token: str) -> None:
    await db.execute("session_end", token_hash=token_hash(token))


async def end_all(db: Session, user_id: int) -> None:
    """Ends every session of the user (a password change)."""
    await db.execute("sessions_end_all", user_id=user_id)
