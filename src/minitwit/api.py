"""The simulator API (docs/api.md, "Simulator API"): JSON renderings of the same handlers the web uses."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable
from functools import wraps

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from minitwit import accounts, follows, simulator, throttle, timelines
from minitwit.db import Session
from minitwit.errors import DatabaseUnavailable, InvalidInput, MiniTwitError, NotAuthorized
from minitwit.requests_util import (
    client_address,
    header_value,
    query_int,
    read_body,
    read_json_object,
    text_field,
)

NOT_AUTHORIZED = "You are not authorized to use this resource!"
DEFAULT_NO = 100

# (request, session, latest): latest is the action id the handler records, or None.
ApiHandler = Callable[[Request, Session, int | None], Awaitable[Response]]


class SimulatorCredential:
    """The one credential the simulator sends, compared in constant time."""

    def __init__(self, username: str, password: str) -> None:
        self._expected = f"{username}:{password}".encode()
        # The header as the simulator writes it on every request: compared as it comes, without
        # decoding; any other spelling of the same credential takes the decoding path.
        self._expected_header = b"Basic " + base64.b64encode(self._expected)

    def accepts(self, authorization: str | None) -> bool:
        if not authorization or not authorization.startswith("Basic "):
            return False
        if hmac.compare_digest(authorization.encode("latin-1", "replace"), self._expected_header):
            return True
        try:
            given = base64.b64decode(authorization[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(given, self._expected)


def json_text_response(text: str) -> Response:
    """A JSON body that PostgreSQL has already written (the API's lists: sql/messages.sql)."""
    return Response(text.encode(), media_type="application/json")


class ApiJSONResponse(JSONResponse):
    """JSON through orjson, several times faster than json.dumps (the API's small objects;
    its lists come written by PostgreSQL, json_text_response)."""

    def render(self, content: object) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_OMIT_MICROSECONDS)


class Endpoint:
    """An API endpoint as its route's ASGI app. A plain function route gets Starlette's
    ``request_response`` wrapper: a second layer of exception handling and a second ``send``
    wrapper on every request. The app's ExceptionMiddleware already renders errors with the same
    handlers (the router updates the scope in place, so they see the path parameters), so the
    simulator's routes skip it (docs/performance.md)."""

    __slots__ = ("endpoint",)

    def __init__(self, endpoint: Callable[[Request], Awaitable[Response]]) -> None:
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.endpoint(Request(scope, receive, send))
        await response(scope, receive, send)


def no_content() -> Response:
    return Response(status_code=204)


def simulator_endpoint(
    action: str, *, needs_credential: bool = True, records_latest: bool = False
) -> Callable[[ApiHandler], Callable]:
    """Wraps an API handler: reads the body, checks the simulator's credential, runs the handler
    on one pooled connection, and records ``?latest=`` whatever happens (the contract: even when
    the request is refused or fails). A handler with ``records_latest`` gets the value and records
    it in its own statement (one round trip for both); any other gets None, the value being
    recorded first. The body is read (or refused as too slow) before a connection is taken: a
    client dripping its body must not hold one of the pool's few connections."""

    def decorate(handler: ApiHandler) -> Callable[[Request], Awaitable[Response]]:
        @wraps(handler)
        async def endpoint(request: Request) -> Response:
            request.scope["minitwit.api"] = True  # errors render as JSON
            request.scope["minitwit.simulator_action"] = action
            latest = query_int(request, "latest")
            try:
                await read_body(request, request.app.state.settings.body_timeout_seconds)
            except MiniTwitError:
                if latest is not None:
                    async with request.app.state.db.session() as db:
                        await db.execute("record_latest", action_id=latest)
                raise
            async with request.app.state.db.session() as db:
                try:
                    credential: SimulatorCredential = request.app.state.simulator_credential
                    if needs_credential and not credential.accepts(header_value(request, b"authorization")):
                        raise NotAuthorized(NOT_AUTHORIZED)
                    if latest is not None and not records_latest:
                        await db.execute("record_latest", action_id=latest)
                        latest = None
                    return await handler(request, db, latest)
                except DatabaseUnavailable:  # recording would fail (or wait) the same way: a 503 now
                    raise
                except Exception:
                    # Refused before the handler's statement, or that statement failed (and
                    # with it its recording): record on its own. A repeat is harmless.
                    if latest is not None:
                        await db.execute("record_latest", action_id=latest)
                    raise

        return endpoint

    return decorate


@simulator_endpoint("latest", needs_credential=False)
async def get_latest(request: Request, db: Session, latest: int | None) -> Response:
    """The latest simulator action id recorded (-1 when none)."""
    return ApiJSONResponse({"latest": await db.fetch_value("get_latest")})


@simulator_endpoint("register", needs_credential=False, records_latest=True)
async def register(request: Request, db: Session, latest: int | None) -> Response:
    """Signs a user up from the JSON body: the simulator (its credential) as the contract says,
    its name check recording ``latest``; anyone else throttled per address like the sign-up form."""
    data = await read_json_object(request)
    username, email, password = text_field(data, "username"), text_field(data, "email"), text_field(data, "pwd")
    credential: SimulatorCredential = request.app.state.simulator_credential
    if credential.accepts(header_value(request, b"authorization")):
        await accounts.register(db, username, email, password, trusted=True, latest=latest)
    else:
        if latest is not None:
            await db.execute("record_latest", action_id=latest)
        await throttle.sign_up(db, request.app.state.settings.throttle, client_address(request),
                               username, email, password)
    return no_content()


@simulator_endpoint("read_msgs")
async def messages(request: Request, db: Session, latest: int | None) -> Response:
    """The newest public messages."""
    limit = query_int(request, "no", DEFAULT_NO) or 0
    return json_text_response(await timelines.public_timeline_json(db, limit=limit))


@simulator_endpoint("read_msgs_user")
async def user_messages(request: Request, db: Session, latest: int | None) -> Response:
    """A user's newest messages."""
    limit = query_int(request, "no", DEFAULT_NO) or 0
    return json_text_response(
        await timelines.user_timeline_json_by_name(db, request.path_params["username"], limit=limit))


@simulator_endpoint("tweet", records_latest=True)
async def post_message(request: Request, db: Session, latest: int | None) -> Response:
    """Posts a message as the user in the path."""
    data = await read_json_object(request)
    await simulator.post_message(db, request.path_params["username"], text_field(data, "content"), latest)
    return no_content()


@simulator_endpoint("read_follows")
async def followed(request: Request, db: Session, latest: int | None) -> Response:
    """Whom the user follows."""
    limit = query_int(request, "no", DEFAULT_NO) or 0
    names = await follows.followed_usernames_json_by_name(db, request.path_params["username"], limit=limit)
    return json_text_response('{"follows": ' + names + "}")


@simulator_endpoint("follow", records_latest=True)
async def change_follow(request: Request, db: Session, latest: int | None) -> Response:
    """Follows or unfollows on behalf of the user in the path."""
    data = await read_json_object(request)
    if "follow" in data:
        action, target = simulator.follow, text_field(data, "follow")
    elif "unfollow" in data:
        request.scope["minitwit.simulator_action"] = "unfollow"
        action, target = simulator.unfollow, text_field(data, "unfollow")
    else:
        raise InvalidInput('Give "follow" or "unfollow" with a username')
    if not target:
        raise InvalidInput("The user to follow or unfollow must be a non-empty string")
    await action(db, request.path_params["username"], target, latest)
    return no_content()
