"""Password hashing: Argon2id at the OWASP minimum, computed off the event loop.

A hash costs ~20 ms of CPU and 19 MiB of memory; run on the event loop it would stall every
other request of the worker, so it runs in a small thread pool (argon2-cffi releases the GIL).
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from minitwit import legacy_passwords

# OWASP Password Storage Cheat Sheet minimum for Argon2id: m=19 MiB, t=2, p=1.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Bounded so that a burst of sign-ups cannot take more than a core's worth of threads and memory.
# One thread per CPU: at 4 requests in flight on 2 cores, one thread made sign-ups slower and four
# no faster (docs/deploying.md, "How fast, and what limits it").
_EXECUTOR = ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1), thread_name_prefix="argon2")


def hash_password_sync(password: str) -> str:
    return HASHER.hash(password)


def verify_password_sync(pw_hash: str, password: str) -> bool:
    if legacy_passwords.is_legacy_hash(pw_hash):  # imported from the original MiniTwit
        return legacy_passwords.verify(pw_hash, password)
    try:
        return HASHER.verify(pw_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(pw_hash: str) -> bool:
    """True for hashes made with weaker parameters (or another scheme) than HASHER's."""
    try:
        return HASHER.check_needs_rehash(pw_hash)
    except InvalidHashError:
        return True


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_EXECUTOR, hash_password_sync, password)


async def verify_password(pw_hash: str, password: str) -> bool:
    return await asyncio.get_running_loop().run_in_executor(
        _EXECUTOR, verify_password_sync, pw_hash, password
    )
