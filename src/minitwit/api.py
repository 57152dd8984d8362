"""The simulator API (CONTRACT section 1): JSON renderings of the same handlers the web uses."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable
from datetime import UTC
from functools import wraps

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from minitwit import accounts, follows, timelines
from minitwit.db import Session
from minitwit.errors import InvalidInput, NotAuthorized
from minitwit.models import Message
from minitwit.requests_util import query_int, read_json_object, text_field

NOT_AUTHORIZED = "You are not authorized to use this resource!"
DEFAULT_NO = 100

ApiHandler = Callable[[Request, Session], Awaitable[Response]]


class SimulatorCredential:
    """The one credential the simulator sends, compared in constant time."""

    def __init__(self, username: str, password: str) -> None:
        self._expected = f"{username}:{password}".encode()

    def accepts(self, authorization: str | None) -> bool:
        if not authorization or not authorization.startswith("Basic "):
            return False
        try:
            given = base64.b64decode(authorization[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(given, self._expected)


def message_json(message: Message) -> dict[str, str]:
    return {
        "content": message.text,
        "pub_date": message.pub_date.astimezone(UTC).isoformat(timespec="seconds"),
        "user": message.username,
    }


def no_content() -> Response:
    return Response(status_code=204)


def simulator_endpoint(action: str, *, needs_credential: bool = True) -> Callable[[ApiHandler], Callable]:
    """Wraps an API handler: records ``?latest=`` first (even when the request then fails),
    checks the simulator's credential, and runs the handler on one pooled connection."""

    def decorate(handler: ApiHandler) -> Callable[[Request], Awaitable[Response]]:
        @wraps(handler)
        async def endpoint(request: Request) -> Response:
            request.scope["minitwit.api"] = True  # errors render as JSON
            request.scope["minitwit.simulator_action"] = action
            async with request.app.state.db.session() as db:
                latest = query_int(request, "latest")
                if latest is not None:
                    await db.execute("record_latest", action_id=latest)
                credential: SimulatorCredential = request.app.state.simulator_credential
                if needs_credential and not credential.accepts(request.headers.get("authorization")):
                    raise NotAuthorized(NOT_AUTHORIZED)
                return await handler(request, db)

        return endpoint

    return decorate


@simulator_endpoint("latest", needs_credential=False)
async def get_latest(request: Request, db: Session) -> Response:
    """The latest simulator action id recorded (-1 when none)."""
    return JSONResponse({"latest": await db.fetch_value("get_latest")})


@simulator_endpoint("register", needs_credential=False)
async def register(request: Request, db: Session) -> Response:
    """Signs a user up from the simulator's JSON body."""
    data = await read_json_object(request)
    await accounts.register(db, text_field(data, "username"), text_field(data, "email"), text_field(data, "pwd"))
    return no_content()


@simulator_endpoint("read_msgs")
async def messages(request: Request, db: Session) -> Response:
    """The newest public messages."""
    timeline = await timelines.public_timeline(db, limit=query_int(request, "no", DEFAULT_NO) or 0)
    return JSONResponse([message_json(m) for m in timeline.messages])


@simulator_endpoint("read_msgs_user")
async def user_messages(request: Request, db: Session) -> Response:
    """A user's newest messages."""
    author_id = await accounts.user_id_of(db, request.path_params["username"])
    timeline = await timelines.user_timeline(db, author_id, limit=query_int(request, "no", DEFAULT_NO) or 0)
    return JSONResponse([message_json(m) for m in timeline.messages])


@simulator_endpoint("tweet")
async def post_message(request: Request, db: Session) -> Response:
    """Posts a message as the user in the path."""
    data = await read_json_object(request)
    author_id = await accounts.user_id_of(db, request.path_params["username"])
    await accounts.post_message(db, author_id, text_field(data, "content"))
    return no_content()


@simulator_endpoint("read_follows")
async def followed(request: Request, db: Session) -> Response:
    """Whom the user follows."""
    user_id = await accounts.user_id_of(db, request.path_params["username"])
    names = await follows.followed_usernames(db, user_id, limit=query_int(request, "no", DEFAULT_NO) or 0)
    return JSONResponse({"follows": names})


@simulator_endpoint("follow")
async def change_follow(request: Request, db: Session) -> Response:
    """Follows or unfollows on behalf of the user in the path."""
    data = await read_json_object(request)
    if "follow" in data:
        action, target = follows.follow, text_field(data, "follow")
    elif "unfollow" in data:
        request.scope["minitwit.simulator_action"] = "unfollow"
        action, target = follows.unfollow, text_field(data, "unfollow")
    else:
        raise InvalidInput('Give "follow" or "unfollow" with a username')
    if not target:
        raise InvalidInput("The user to follow or unfollow must be a non-empty string")
    follower_id = await accounts.user_id_of(db, request.path_params["username"])
    await action(db, follower_id, target)
    return no_content()
