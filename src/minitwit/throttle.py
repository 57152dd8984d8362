"""Throttling of sign-ins and sign-ups, counted in PostgreSQL so that every replica agrees.

Sign-ins slow down, they are never banned (OWASP's authentication and credential-stuffing
cheat sheets; docs/security.md has the policy). Failures are counted per (username, address)
and per address. The first few of each are free; past them, each failure doubles the wait
before the next try from there, up to a maximum, and a day without failures forgets them. The
owner signing in from an address that has not been failing is never refused or slowed: a
guesser elsewhere only slows themselves. A correct password clears its (username, address).

Sign-ups keep a fixed window per address (sql/throttle.sql): each attempt takes a hit before
the password is hashed and gets it back when refused as invalid. The simulator signs up with
its credential and is not throttled.
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
from minitwit.usernames import username_key
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


@dataclass(frozen=True)
class Delays:
    """Growing delays for one scope of failed sign-ins (sql/throttle.sql: login_wait)."""

    scope: str
    free_failures: int
    max_delay_seconds: int
    forget_after_seconds: int
    refusal: str  # completed with "; try again in N seconds"

    @property
    def active(self) -> bool:
        return self.free_failures > 0 and self.max_delay_seconds > 0

    def values(self, key: str) -> dict[str, object]:
        return {"scope": self.scope, "key": key, "forget_after_seconds": self.forget_after_seconds}


def login_user_delays(limits: ThrottleLimits) -> Delays:
    return Delays("login-user", limits.login_free_failures_per_user, limits.login_max_delay_seconds,
                  limits.login_forget_after_seconds, "Too many failed sign-in attempts for this username")


def login_address_delays(limits: ThrottleLimits) -> Delays:
    return Delays("login-address", limits.login_free_failures_per_address, limits.login_max_delay_seconds,
                  limits.login_forget_after_seconds, "Too many failed sign-in attempts from your network")


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


async def wait(db: Session, delays: Delays, key: str) -> None:
    """TooManyAttempts while ``key`` must still wait after its failures; else goes ahead."""
    if not delays.active:
        return
    seconds = await db.fetch_value("login_wait", free_failures=delays.free_failures,
                                   max_delay_seconds=delays.max_delay_seconds, **delays.values(key))
    if seconds:
        raise TooManyAttempts(f"{delays.refusal}; try again in {seconds} second{'s' if seconds != 1 else ''}",
                              int(seconds))


async def failed(db: Session, delays: Delays, key: str) -> None:
    global _hits_since_prune
    if not delays.active:
        return
    await db.execute("login_failed", **delays.values(key))
    _hits_since_prune += 1
    if _hits_since_prune >= PRUNE_EVERY:
        _hits_since_prune = 0
        older_than = max(PRUNE_AFTER_SECONDS, delays.forget_after_seconds)
        await db.execute("login_throttle_prune", older_than_seconds=older_than)


async def sign_in(db: Session, limits: ThrottleLimits, username: str, password: str, address: str) -> User:
    """accounts.authenticate, refused with TooManyAttempts while a failing key must wait."""
    by_user, by_address = login_user_delays(limits), login_address_delays(limits)
    address = address_key(address)
    # The username by its comparison key, so "Alice" and "ALICE" are one count.
    user_key = f"{address} {username_key(username)}" if can_be_username(username) else None
    await wait(db, by_address, address)
    if user_key is not None:
        await wait(db, by_user, user_key)
    try:
        user = await accounts.authenticate(db, username, password)
    except InvalidInput:
        await failed(db, by_address, address)
        if user_key is not None:
            await failed(db, by_user, user_key)
        raise
    if user_key is not None and by_user.active:
        await db.execute("login_succeeded", scope=by_user.scope, key=user_key)
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
