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


class DatabaseUnavailable(MiniTwitError):
    """The database cannot answer now (down, restarting, every connection busy, a statement
    stuck behind a lock): 503 with Retry-After. Expected in operation, so it is counted in a
    metric and logged in one line, never reported to Sentry as a bug."""

    status_code = 503
    retry_after = 5  # seconds: about how long a PostgreSQL restart takes

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__("Temporarily unavailable: the database cannot answer; please try again shortly")
        self.reason = reason  # unreachable, pool_timeout or statement_timeout (the metric's label)
        self.detail = detail  # the driver's own words, for the log


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
