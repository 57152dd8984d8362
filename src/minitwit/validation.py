"""Input rules shared by the web forms and the simulator API: pure functions, no I/O.

Each returns the user-facing error text (docs/api.md, "Web routes"), or None when the input is fine.
The maximum lengths match the CHECK constraints of migrations/0001.
"""

from __future__ import annotations

import re
import unicodedata

MAX_USERNAME_LENGTH = 64
MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit
MAX_PASSWORD_LENGTH = 1024  # hashing cost must stay bounded
MAX_MESSAGE_LENGTH = 1000


# ASCII's only Cc characters (ASCII has no Cf or Cs): one regex search instead of a category
# lookup per character, for the names and messages of every simulator request.
ASCII_CONTROL = re.compile("[\x00-\x1f\x7f]")
ASCII_CONTROL_BUT_LINES = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # \t \n \r allowed


def has_control_characters(text: str) -> bool:
    """Control characters (NUL, escapes, ...) have no place in names or one-line fields."""
    if text.isascii():
        return ASCII_CONTROL.search(text) is not None
    return any(unicodedata.category(char) in ("Cc", "Cf", "Cs") for char in text)


def can_be_username(name: str) -> bool:
    """Whether some account could have this name: checked before a lookup, so that a NUL or an
    over-long name in a URL or a sign-in form is an unknown user, not a database error."""
    return 0 < len(name) <= MAX_USERNAME_LENGTH and not has_control_characters(name)


def validate_username(username: str) -> str | None:
    if not username:
        return "You have to enter a username"
    if len(username) > MAX_USERNAME_LENGTH:
        return f"The username may have at most {MAX_USERNAME_LENGTH} characters"
    if has_control_characters(username) or username != username.strip() or "/" in username:
        return "The username may not contain control characters, slashes or surrounding spaces"
    return None


def validate_email(email: str) -> str | None:
    if not email or "@" not in email:
        return "You have to enter a valid email address"
    if len(email) > MAX_EMAIL_LENGTH or has_control_characters(email) or len(email) < 3:
        return "You have to enter a valid email address"
    return None


def validate_registration(
    username: str, email: str, password: str, password2: str | None = None
) -> str | None:
    """The first problem with a sign-up, in the order the original MiniTwit checks them."""
    return validate_username(username) or validate_email(email) or validate_password(password, password2)


def validate_password(password: str, password2: str | None = None) -> str | None:
    """The problem with a new password (sign-up or change), if any."""
    if not password:
        return "You have to enter a password"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"The password may have at most {MAX_PASSWORD_LENGTH} characters"
    if "\x00" in password:
        return "The password may not contain NUL characters"
    if password2 is not None and password != password2:
        return "The two passwords do not match"
    return None


def validate_message(text: str) -> str | None:
    """The problem with a message's text, if any."""
    if not text or not text.strip():
        return "You have to enter a message"
    if len(text) > MAX_MESSAGE_LENGTH:
        return f"A message may have at most {MAX_MESSAGE_LENGTH} characters"
    if text.isascii():
        has_control = ASCII_CONTROL_BUT_LINES.search(text) is not None
    else:
        has_control = any(unicodedata.category(char) in ("Cc", "Cs") and char not in "\n\r\t" for char in text)
    if has_control:
        return "A message may not contain control characters"
    return None
