"""Unit tests of the input rules shared by the web forms and the API."""

from __future__ import annotations

import pytest

from minitwit.validation import (
    MAX_MESSAGE_LENGTH,
    MAX_USERNAME_LENGTH,
    validate_message,
    validate_registration,
)


@pytest.mark.parametrize(
    "username, email, password, password2, error",
    [
        ("", "a@b", "pw", "pw", "You have to enter a username"),
        ("a", "", "pw", "pw", "You have to enter a valid email address"),
        ("a", "no-at", "pw", "pw", "You have to enter a valid email address"),
        ("a", "a@b", "", "", "You have to enter a password"),
        ("a", "a@b", "pw", "other", "The two passwords do not match"),
        ("", "", "", "x", "You have to enter a username"),  # first problem wins, as in the original
        ("Roger Histand", "Roger+Histand@hotmail.com", "]=)[X{Km{z", None, None),
        ("a" * MAX_USERNAME_LENGTH, "a@b.c", "pw", "pw", None),
    ],
)
def test_registration_rules(username, email, password, password2, error) -> None:
    assert validate_registration(username, email, password, password2) == error


@pytest.mark.parametrize(
    "username", ["a" * (MAX_USERNAME_LENGTH + 1), "tab\there", "nul\x00", " padded", "padded ", "a/b", "bell\x07"]
)
def test_registration_refuses_unroutable_or_oversized_names(username: str) -> None:
    error = validate_registration(username, "a@b.c", "pw")
    assert error is not None and "username" in error.lower()


def test_registration_refuses_oversized_email_and_password() -> None:
    assert validate_registration("a", "a@" + "b" * 300, "pw") == "You have to enter a valid email address"
    assert "at most" in (validate_registration("a", "a@b.c", "p" * 2000) or "")


@pytest.mark.parametrize(
    "text, ok",
    [("hello", True), ("", False), ("   ", False), ("x" * MAX_MESSAGE_LENGTH, True),
     ("x" * (MAX_MESSAGE_LENGTH + 1), False), ("line\nbreak", True), ("nul\x00", False), ("esc\x1b[31m", False),
     ("<b>markup is text</b>", True), ("emoji 🐦 ünïcödé", True)],
)
def test_message_rules(text: str, ok: bool) -> None:
    assert (validate_message(text) is None) is ok


@pytest.mark.parametrize("query", [b"", b"latest=5", b"latest=5&no=100", b"no=1&latest=2&latest=3", b"latest",
                                   b"latest=", b"latestx=4", b"xlatest=4", b"a=1&&latest=7&", b"latest=%31",
                                   b"latest=1+2", b"latest=1;no=2", b"latest=\xff"])
def test_query_value_reads_as_starlette_does(query: bytes) -> None:
    from starlette.requests import Request

    from minitwit.requests_util import query_value

    request = Request({"type": "http", "query_string": query, "headers": []})
    for name in ("latest", "no"):
        assert query_value(request, name) == request.query_params.get(name)


def test_the_ascii_fast_path_agrees_with_the_unicode_categories() -> None:
    import unicodedata

    from minitwit.validation import has_control_characters

    for code in range(128):
        for text in (chr(code), f"ab{chr(code)}cd"):
            categories = {unicodedata.category(char) for char in text}
            assert has_control_characters(text) == bool(categories & {"Cc", "Cf", "Cs"}), code
        text = f"ab{chr(code)}cd"  # a whitespace-only message has its own error
        refused = validate_message(text) == "A message may not contain control characters"
        assert refused == (unicodedata.category(chr(code)) == "Cc" and chr(code) not in "\n\r\t"), code
