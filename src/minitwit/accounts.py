"""Accounts: signing up, signing in, posting, and resolving usernames."""

from __future__ import annotations

from minitwit import passwords, sessions, usernames
from minitwit.db import Session
from minitwit.errors import InvalidInput, UnknownUser, require_possible_username
from minitwit.models import User
from minitwit.validation import can_be_username, validate_message, validate_password, validate_registration

TAKEN = "The username is already taken"

# Usernames that would be shadowed by a route of the site (GET /<username> comes last).
RESERVED_USERNAMES = frozenset(
    {"public", "login", "logout", "register", "add_message", "static", "metrics", "health",
     "ready", "latest", "msgs", "fllws", "openapi.json", "favicon.ico", "robots.txt"}
)


async def user_id_of(db: Session, username: str) -> int:
    """The id of ``username``; UnknownUser when there is none."""
    require_possible_username(username)
    user_id = await db.fetch_value("get_user_id", username=username)
    if user_id is None:
        raise UnknownUser(username)
    return int(user_id)


async def profile(db: Session, username: str) -> User:
    require_possible_username(username)
    row = await db.fetch_one("get_user_profile", username=username)
    if row is None:
        raise UnknownUser(username)
    return User(row["user_id"], row["username"], row["email"])


async def register(
    db: Session, username: str, email: str, password: str, password2: str | None = None,
    *, trusted: bool = False, latest: int | None = None,
) -> int:
    """Creates an account and returns its id; InvalidInput says what is wrong otherwise.

    A name that reads the same as an existing one (usernames.username_key) is taken, and one
    with invisible characters is refused. ``trusted`` (the simulator, by its credential) keeps
    the contract instead: only the exact same name is taken, and a look-alike of an existing
    name is created with a suffixed key (usernames.fill_missing_keys), as old names are; its
    name check also records the simulator's ``latest`` action id (one round trip for both)."""
    error = validate_registration(username, email, password, password2)
    if error is None and username.lower() in RESERVED_USERNAMES:
        error = "This username is reserved, please choose another"
    if error is None and not trusted:
        error = usernames.invisible_problem(username)
    if error is None:  # checked before hashing, so a duplicate costs no Argon2 time
        if trusted:
            exact = bool(await db.fetch_value("simulator_username_taken", username=username, latest=latest))
        else:
            exact = await db.fetch_value("get_user_id", username=username) is not None
        if exact or (not trusted and await usernames.is_taken(db, username)):
            error = TAKEN
    if error:
        raise InvalidInput(error)
    # Hashed without a connection: a burst of sign-ups must not hold the pool while they queue.
    pw_hash = await db.without_connection(passwords.hash_password, password)
    key = usernames.username_key(username)
    user_id = await db.fetch_value("create_user_with_key", username=username, email=email, pw_hash=pw_hash,
                                   username_key=key)
    if user_id is None and trusted:  # a look-alike holds the key: keep the name, not the key
        user_id = await db.fetch_value("create_user", username=username, email=email, pw_hash=pw_hash)
        if user_id is not None:
            await usernames.fill_missing_keys(db)
    if user_id is None:  # another request took the name between the check and the insert
        raise InvalidInput(TAKEN)
    return int(user_id)


async def change_password(db: Session, user_id: int, password: str, password2: str | None = None) -> None:
    """Sets a new password and ends every session of the user, wherever it was signed in."""
    error = validate_password(password, password2)
    if error:
        raise InvalidInput(error)
    pw_hash = await db.without_connection(passwords.hash_password, password)
    async with db.transaction():
        if await db.fetch_value("update_password", user_id=user_id, pw_hash=pw_hash) is None:
            raise UnknownUser()
        await sessions.end_all(db, user_id)


async def authenticate(db: Session, username: str, password: str) -> User:
    """The user whose credentials these are; InvalidInput with the contract's texts otherwise."""
    row = await db.fetch_one("get_user_by_name", username=username) if can_be_username(username) else None
    if row is None:
        raise InvalidInput("Invalid username")
    if not await db.without_connection(passwords.verify_password, row["pw_hash"], password):
        raise InvalidInput("Invalid password")
    if passwords.needs_rehash(row["pw_hash"]):
        new_hash = await db.without_connection(passwords.hash_password, password)
        await db.execute("update_password_hash", user_id=row["user_id"], pw_hash=new_hash)
    return User(row["user_id"], row["username"], row["email"])


async def post_message(db: Session, author_id: int, text: str) -> int:
    """Records a message; returns its id."""
    error = validate_message(text)
    if error:
        raise InvalidInput(error)
    return int(await db.fetch_value("insert_message", author_id=author_id, text=text))
