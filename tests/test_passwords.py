"""Unit tests of password hashing: Argon2id at the OWASP minimum, off the event loop."""

from __future__ import annotations

import asyncio
import threading

from argon2 import extract_parameters

from minitwit import passwords


def test_hash_is_argon2id_at_the_owasp_minimum() -> None:
    pw_hash = passwords.hash_password_sync("secret")
    assert pw_hash.startswith("$argon2id$")
    parameters = extract_parameters(pw_hash)
    assert (parameters.memory_cost, parameters.time_cost, parameters.parallelism) == (19 * 1024, 2, 1)


def test_verify_accepts_only_the_password() -> None:
    pw_hash = passwords.hash_password_sync("secret")
    assert passwords.verify_password_sync(pw_hash, "secret")
    assert not passwords.verify_password_sync(pw_hash, "Secret")
    assert not passwords.verify_password_sync("not a hash", "secret")
    assert passwords.hash_password_sync("secret") != pw_hash  # salted


def test_weaker_hashes_need_rehash() -> None:
    assert not passwords.needs_rehash(passwords.hash_password_sync("x"))
    assert passwords.needs_rehash("$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
    assert passwords.needs_rehash("pbkdf2:sha256:600000$salt$hash")


def test_hashing_runs_off_the_event_loop(monkeypatch) -> None:
    """The loop keeps ticking while hashes are computed: they run in worker threads."""

    async def scenario() -> tuple[set[str], int]:
        loop_thread = threading.current_thread().name
        seen: set[str] = set()
        original = passwords.hash_password_sync

        def spy(password: str) -> str:
            seen.add(threading.current_thread().name)
            return original(password)

        monkeypatch.setattr(passwords, "hash_password_sync", spy)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        try:
            await asyncio.gather(*(passwords.hash_password(f"pw{i}") for i in range(4)))
        finally:
            task.cancel()
        assert loop_thread not in seen
        return seen, ticks

    threads, ticks = asyncio.run(scenario())
    assert all(name.startswith("argon2") for name in threads)
    assert ticks > 4  # the loop ran other work while the four hashes were computed
