"""Errors that handlers raise; one place (minitwit.app) turns them into a page or a JSON body."""

from __future__ import annotations

from minitwit.validation import can_be_username


class MiniTwitError(Exception):
    """A request that cannot be served as asked; ``message`` is shown to the user."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(MiniTwitError):
    status_code = 400


class NotSignedIn(MiniTwitError):
    status_code = 401


class NotAuthorized(MiniTwitError):
    status_code = 403


class NotFound(MiniTwitError):
    status_code = 404


class UnknownUser(NotFound):
    def __init__(self, username: str = "") -> None:
        super().__init__("Unknown user" if not username else f'Unknown user "{username}"')
        self.username = username


def require_possible_username(*usernames: str) -> None:
    """UnknownUser for a name no account can have (NUL, control characters, over-long), before
    it reaches a query: such a name is an unknown user, never a database error."""
    for username in usernames:
        if not can_be_username(username):
            raise UnknownUser(username)
