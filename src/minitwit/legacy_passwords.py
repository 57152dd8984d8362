"""Password hashes of the original MiniTwit (werkzeug.security), checked with the standard library.

Users imported by ``minitwit import-legacy`` keep their werkzeug hash until they first sign in;
``accounts.authenticate`` then replaces it with Argon2id. The formats are werkzeug's
``method$salt$hexdigest``:

- ``pbkdf2:<hash name>:<iterations>$salt$hex`` (werkzeug's default before 3.0),
- ``scrypt:<n>:<r>:<p>$salt$hex`` (the default since 3.0).

Parameters come from the database, so they are bounded: a tampered row must not be able to make
one sign-in take minutes or gigabytes.
"""

from __future__ import annotations

import hashlib
import hmac

PREFIXES = ("pbkdf2:", "scrypt:", "pbkdf2$", "scrypt$")
# werkzeug 3.1's defaults, used when a hash omits its parameters (as werkzeug itself does).
DEFAULT_PBKDF2_ITERATIONS = 1_000_000
DEFAULT_SCRYPT = (2**15, 8, 1)
MAX_PBKDF2_ITERATIONS = 10_000_000
MAX_SCRYPT_MEMORY = 256 * 1024 * 1024


def is_legacy_hash(pw_hash: str) -> bool:
    return pw_hash.startswith(PREFIXES)


def _pbkdf2(args: list[str], password: bytes, salt: bytes) -> bytes | None:
    if len(args) > 2:
        return None
    hash_name = args[0] if args else "sha256"
    iterations = int(args[1]) if len(args) == 2 else DEFAULT_PBKDF2_ITERATIONS
    if hash_name not in hashlib.algorithms_guaranteed or not 0 < iterations <= MAX_PBKDF2_ITERATIONS:
        return None
    return hashlib.pbkdf2_hmac(hash_name, password, salt, iterations)


def _scrypt(args: list[str], password: bytes, salt: bytes) -> bytes | None:
    if args and len(args) != 3:
        return None
    n, r, p = (int(arg) for arg in args) if args else DEFAULT_SCRYPT
    maxmem = 132 * n * r * p  # werkzeug's allowance over the 128·n·r·p that scrypt needs
    if min(n, r, p) < 1 or maxmem > MAX_SCRYPT_MEMORY:
        return None
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=maxmem)


def verify(pw_hash: str, password: str) -> bool:
    """Whether ``password`` matches a werkzeug pbkdf2 or scrypt hash; False for any other format."""
    try:
        method, salt, expected = pw_hash.split("$", 2)
        name, *args = method.split(":")
        derive = {"pbkdf2": _pbkdf2, "scrypt": _scrypt}[name]
        digest = derive(args, password.encode(), salt.encode())
        return digest is not None and hmac.compare_digest(digest.hex().encode(), expected.encode())
    except (KeyError, ValueError, UnicodeEncodeError):
        return False
