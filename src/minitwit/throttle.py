"""Throttling of sign-ins and sign-ups, counted in PostgreSQL so that every replica agrees.

Each attempt takes a hit from a fixed window (sql/throttle.sql) *before* any password is checked,
so a burst of parallel guesses cannot slip past the count; the hit is given back when the attempt
turns out fine. A failed sign-in therefore costs one hit for the username and one for the client
address; a successful one clears the username's count and gives the address its hit back, so
signing in is never slowed by a throttle. A sign-up costs its address one hit when it succeeds.
The simulator API has its own credential and is not throttled.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

from minitwit import accounts
from minitwit.db import Session
from minitwit.errors import InvalidInput, MiniTwitError
from minitwit.models import User
from minitwit.settings import ThrottleLimits
from minitwit.validation import can_be_username

PRUNE_EVERY = 500  # hits per process between two prunes of windows long past
PRUNE_AFTER_SECONDS = 24 * 3600
_hits_since_prune = 0


class TooManyAttempts(MiniTwitError):
    status_code = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Limit:
    """At most ``max_hits`` per ``window_seconds`` for one key of ``scope``; 0 hits = no limit."""

    scope: str
    max_hits: int
    window_seconds: int
    refusal: str  # completed with "; try again in N minutes"


def login_user_limit(limits: ThrottleLimits) -> Limit:
    return Limit("login-user", limits.login_failures_per_user, limits.login_window_seconds,
                 "Too many failed sign-in attempts for this username")


def login_address_limit(limits: ThrottleLimits) -> Limit:
    return Limit("login-address", limits.login_failures_per_address, limits.login_window_seconds,
                 "Too many failed sign-in attempts from your network")


def signup_address_limit(limits: ThrottleLimits) -> Limit:
    return Limit("signup-address", limits.signups_per_address, limits.signup_window_seconds,
                 "Too many sign-ups from your network")


def address_key(host: str | None) -> str:
    """The throttling key of a client address: IPv4 as is, IPv6 by its /64 (one household)."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:256]  # not an IP (a test client, a unix socket): still one key per peer
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _active(limit: Limit) -> bool:
    return limit.max_hits > 0 and limit.window_seconds > 0


async def take(db: Session, limit: Limit, key: str) -> None:
    """Counts one attempt; TooManyAttempts when the window already holds ``max_hits``."""
    global _hits_since_prune
    if not _active(limit):
        return
    row = await db.fetch_one("throttle_hit", scope=limit.scope, key=key, window_seconds=limit.window_seconds)
    assert row is not None  # an upsert with RETURNING always yields its row
    _hits_since_prune += 1
    if _hits_since_prune >= PRUNE_EVERY:
        _hits_since_prune = 0
        await db.execute("throttle_prune", older_than_seconds=max(PRUNE_AFTER_SECONDS, limit.window_seconds))
    if row["hits"] > limit.max_hits:
        retry_after = max(1, int(row["retry_after"]))
        minutes = math.ceil(retry_after / 60)
        raise TooManyAttempts(
            f"{limit.refusal}; try again in {minutes} minute{'s' if minutes != 1 else ''}", retry_after
        )


async def give_back(db: Session, limit: Limit, key: str) -> None:
    """Takes back the hit of an attempt that turned out fine."""
    if _active(limit):
        await db.execute("throttle_give_back", scope=limit.scope, key=key)


async def forget(db: Session, limit: Limit, key: str) -> None:
    if _active(limit):
        await db.execute("throttle_forget", scope=limit.scope, key=key)


async def sign_in(db: Session, limits: ThrottleLimits, username: str, password: str, address: str) -> User:
    """accounts.authenticate, refused with TooManyAttempts after too many failures."""
    by_user, by_address = login_user_limit(limits), login_address_limit(limits)
    address = address_key(address)
    await take(db, by_address, address)
    if can_be_username(username):  # no account has any other name: nothing to guard
        await take(db, by_user, username)
    user = await accounts.authenticate(db, username, password)  # InvalidInput: the hits stay
    await forget(db, by_user, username)
    await give_back(db, by_address, address)
    return user


async def sign_up(
    db: Session, limits: ThrottleLimits, address: str,
    username: str, email: str, password: str, password2: str | None = None,
) -> int:
    """accounts.register, refused with TooManyAttempts after too many sign-ups from one address."""
    by_address, address = signup_address_limit(limits), address_key(address)
    await take(db, by_address, address)
    try:
        return await accounts.register(db, username, email, password, password2)
    except InvalidInput:
        await give_back(db, by_address, address)
        raise
