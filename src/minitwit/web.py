"""The web UI (docs/api.md, "Web routes"): HTML renderings of the timeline, account and follow handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps

import asyncpg
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from minitwit import accounts, follows, sessions, throttle, timelines
from minitwit.db import Session
from minitwit.errors import InvalidInput, NotSignedIn
from minitwit.models import User
from minitwit.requests_util import client_address, query_int, read_body
from minitwit.templating import flash, render
from minitwit.throttle import TooManyAttempts

WebHandler = Callable[[Request, Session], Awaitable[Response]]


SESSION_TOKEN = "sid"  # noqa: S105  # nosec B105 - the session key that holds the token, not a secret


async def current_user(request: Request, db: Session) -> User | None:
    """The signed-in user: the session cookie's token, looked up on the server (one indexed
    lookup, only when the cookie has a token), so that a session ended there is anonymous."""
    token = request.session.get(SESSION_TOKEN)
    if not isinstance(token, str):
        return None
    user = await sessions.user_of(db, token)
    if user is None:  # signed out elsewhere, password changed, or expired
        request.session.pop(SESSION_TOKEN, None)
    return user


def page(handler: WebHandler) -> Callable[[Request], Awaitable[Response]]:
    """Runs a web handler on one pooled connection, with the signed-in user in the scope. The
    body is read first (within the time limit), so a slow client never holds a connection."""

    @wraps(handler)
    async def endpoint(request: Request) -> Response:
        await read_body(request, request.app.state.settings.body_timeout_seconds)
        async with request.app.state.db.session() as db:
            request.scope["minitwit.user"] = await current_user(request, db)
            return await handler(request, db)

    return endpoint


def signed_in(request: Request) -> User:
    user: User | None = request.scope.get("minitwit.user")
    if user is None:
        raise NotSignedIn("You need to sign in to do that")
    return user


def refused_page(request: Request, template: str, problem: TooManyAttempts, **context: str) -> Response:
    response = render(request, template, status_code=problem.status_code, error=problem.message, **context)
    response.headers["Retry-After"] = str(problem.retry_after)
    return response


def redirect(request: Request, route: str, **params: str) -> Response:
    """A redirect to a path of this site: relative, so the Host header is never reflected."""
    return RedirectResponse(str(request.app.url_path_for(route, **params)), status_code=302)


async def form(request: Request) -> dict[str, str]:
    """The posted form fields as strings (files are ignored; RequestGuard caps the body)."""
    data = await request.form()
    return {key: value for key, value in data.items() if isinstance(value, str)}


@page
async def timeline(request: Request, db: Session) -> Response:
    """Shows the signed-in user's timeline, or redirects to the public one."""
    user = request.scope["minitwit.user"]
    if user is None:
        return redirect(request, "public_timeline")
    page_ = await timelines.home_timeline(db, user.user_id, before=query_int(request, "before"))
    return render(request, "timeline.html", timeline=page_, kind="home")


@page
async def public_timeline(request: Request, db: Session) -> Response:
    """Shows everybody's messages."""
    page_ = await timelines.public_timeline(db, before=query_int(request, "before"))
    return render(request, "timeline.html", timeline=page_, kind="public")


@page
async def user_timeline(request: Request, db: Session) -> Response:
    """Shows one user's messages, with a follow/unfollow control for other signed-in users."""
    profile = await accounts.profile(db, request.path_params["username"])
    user = request.scope["minitwit.user"]
    followed = user is not None and await follows.is_following(db, user.user_id, profile.user_id)
    page_ = await timelines.user_timeline(db, profile.user_id, before=query_int(request, "before"))
    return render(request, "timeline.html", timeline=page_, kind="user", profile=profile, followed=followed)


@page
async def follow_user(request: Request, db: Session) -> Response:
    """Follows the user in the path, then shows their page."""
    user, username = signed_in(request), request.path_params["username"]
    try:
        await follows.follow(db, user.user_id, username)
        flash(request, f'You are now following "{username}"')
    except InvalidInput as error:
        flash(request, error.message)
    return redirect(request, "user_timeline", username=username)


@page
async def unfollow_user(request: Request, db: Session) -> Response:
    """Unfollows the user in the path, then shows their page."""
    user, username = signed_in(request), request.path_params["username"]
    await follows.unfollow(db, user.user_id, username)
    flash(request, f'You are no longer following "{username}"')
    return redirect(request, "user_timeline", username=username)


@page
async def add_message(request: Request, db: Session) -> Response:
    """Posts a message as the signed-in user, then shows their timeline."""
    user = signed_in(request)
    text = (await form(request)).get("text", "")
    try:
        await accounts.post_message(db, user.user_id, text)
        flash(request, "Your message was recorded")
    except InvalidInput as error:
        flash(request, error.message)
    except asyncpg.ForeignKeyViolationError:  # the session names a user that no longer exists
        request.session.clear()
        raise NotSignedIn("Your account no longer exists; please sign up again") from None
    return redirect(request, "timeline")


@page
async def login(request: Request, db: Session) -> Response:
    """Signs a user in."""
    if request.scope["minitwit.user"] is not None:
        return redirect(request, "timeline")
    error, fields = None, {}
    if request.method == "POST":
        fields = await form(request)
        try:
            user = await throttle.sign_in(db, request.app.state.settings.throttle, fields.get("username", ""),
                                          fields.get("password", ""), client_address(request))
        except TooManyAttempts as problem:
            return refused_page(request, "login.html", problem, username=fields.get("username", ""))
        except InvalidInput as problem:
            error = problem.message
        else:
            request.session.clear()
            request.session[SESSION_TOKEN] = await sessions.start(db, user.user_id)
            flash(request, "You were logged in")
            return redirect(request, "timeline")
    return render(request, "login.html", error=error, username=fields.get("username", ""))


@page
async def register(request: Request, db: Session) -> Response:
    """Signs a user up through the form."""
    if request.scope["minitwit.user"] is not None:
        return redirect(request, "timeline")
    error, fields = None, {}
    if request.method == "POST":
        fields = await form(request)
        try:
            await throttle.sign_up(
                db,
                request.app.state.settings.throttle,
                client_address(request),
                fields.get("username", ""),
                fields.get("email", ""),
                fields.get("password", ""),
                fields.get("password2", ""),
            )
        except TooManyAttempts as problem:
            return refused_page(request, "register.html", problem, username=fields.get("username", ""),
                                email=fields.get("email", ""))
        except InvalidInput as problem:
            error = problem.message
        else:
            flash(request, "You were successfully registered and can login now")
            return redirect(request, "login")
    return render(
        request, "register.html", error=error, username=fields.get("username", ""), email=fields.get("email", "")
    )


@page
async def logout(request: Request, db: Session) -> Response:
    """Signs the user out, ending the session on the server too."""
    token = request.session.get(SESSION_TOKEN)
    if isinstance(token, str):
        await sessions.end(db, token)
    request.session.clear()
    flash(request, "You were logged out")
    return redirect(request, "public_timeline")
