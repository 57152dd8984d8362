"""The OpenAPI 3.0 description of the simulator API (docs/api.md, "Simulator API"), served at /openapi.json.

Written by hand rather than generated from docstrings: it is a contract, and the schemathesis
test (tests/test_openapi.py) checks every answer of the app against it.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from minitwit.api import NOT_AUTHORIZED
from minitwit.requests_util import MAX_BODY_BYTES
from minitwit.validation import (
    MAX_EMAIL_LENGTH,
    MAX_MESSAGE_LENGTH,
    MAX_PASSWORD_LENGTH,
    MAX_USERNAME_LENGTH,
)


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref("schemas", name)}}}


USERNAME = {"type": "string", "minLength": 1, "maxLength": MAX_USERNAME_LENGTH, "example": "Roger Histand"}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["status", "error_msg"],
        "properties": {"status": {"type": "integer"}, "error_msg": {"type": "string"}},
        "additionalProperties": False,
    },
    "Latest": {
        "type": "object",
        "required": ["latest"],
        "properties": {"latest": {"type": "integer", "format": "int64", "description": "-1 when none recorded"}},
        "additionalProperties": False,
    },
    "Message": {
        "type": "object",
        "required": ["content", "pub_date", "user"],
        "properties": {
            "content": {"type": "string"},
            "pub_date": {"type": "string", "format": "date-time", "example": "2026-11-28T05:19:00+00:00"},
            "user": {"type": "string"},
        },
        "additionalProperties": False,
    },
    "Follows": {
        "type": "object",
        "required": ["follows"],
        "properties": {"follows": {"type": "array", "items": {"type": "string"}}},
        "additionalProperties": False,
    },
    "Registration": {
        "type": "object",
        "required": ["username", "email", "pwd"],
        "properties": {
            "username": USERNAME,
            "email": {"type": "string", "maxLength": MAX_EMAIL_LENGTH, "example": "roger@example.com"},
            "pwd": {"type": "string", "maxLength": MAX_PASSWORD_LENGTH},
        },
    },
    "NewMessage": {
        "type": "object",
        "required": ["content"],
        "properties": {"content": {"type": "string", "minLength": 1, "maxLength": MAX_MESSAGE_LENGTH}},
    },
    "FollowChange": {
        "type": "object",
        "description": '"follow" wins when both keys are given',
        "properties": {"follow": USERNAME, "unfollow": USERNAME},
        "anyOf": [{"required": ["follow"]}, {"required": ["unfollow"]}],
    },
}

PARAMETERS: dict[str, Any] = {
    "latest": {
        "name": "latest",
        "in": "query",
        "required": False,
        "description": "The simulator's action id, recorded before anything else (even when the request fails)",
        "schema": {"type": "integer", "format": "int64"},
    },
    "no": {
        "name": "no",
        "in": "query",
        "required": False,
        "description": "At most this many items (a malformed value means the default)",
        "schema": {"type": "integer", "default": 100},
    },
    "username": {"name": "username", "in": "path", "required": True, "schema": USERNAME},
}

RESPONSES: dict[str, Any] = {
    "NoContent": {"description": "Done"},
    "BadRequest": _json(_ref("schemas", "Error"), "Malformed body or invalid field (error_msg says which)"),
    "NotAuthorized": _json(_ref("schemas", "Error"), f'Missing or wrong credential: error_msg is "{NOT_AUTHORIZED}"'),
    "UnknownUser": _json(_ref("schemas", "Error"), "A user named in the request does not exist"),
    "TooLarge": _json(_ref("schemas", "Error"), f"The body is over {MAX_BODY_BYTES} bytes"),
    "TooSlow": _json(_ref("schemas", "Error"), "The body did not arrive within the time limit (10 s by default)"),
    "TooManySignUps": {
        **_json(_ref("schemas", "Error"), "Too many sign-ups from this address without the simulator's credential"),
        "headers": {"Retry-After": {"description": "Seconds until sign-ups are taken again",
                                    "schema": {"type": "integer"}}},
    },
}


def _operation(summary: str, responses: dict[str, Any], *, body: str | None = None,
               path_user: bool = False, paged: bool = False, public: bool = False) -> dict[str, Any]:
    parameters = [_ref("parameters", "latest")]
    if path_user:
        parameters.insert(0, _ref("parameters", "username"))
    if paged:
        parameters.append(_ref("parameters", "no"))
    operation: dict[str, Any] = {"summary": summary, "parameters": parameters, "responses": dict(responses)}
    if body:
        operation["requestBody"] = _body(body)
        operation["responses"]["400"] = _ref("responses", "BadRequest")
        operation["responses"]["413"] = _ref("responses", "TooLarge")
        operation["responses"]["408"] = _ref("responses", "TooSlow")
    if public:
        operation["security"] = []
    else:
        operation["responses"]["403"] = _ref("responses", "NotAuthorized")
    if path_user:
        operation["responses"]["404"] = _ref("responses", "UnknownUser")
    return operation


def _register_operation() -> dict[str, Any]:
    operation = _operation(
        "Sign a user up (the same rules and error texts as the web form)",
        {
            "204": _ref("responses", "NoContent"),
            # The web's sign-up form posts to the same path: without a JSON body, that answers.
            "200": {"description": "Without a JSON content type: the web sign-up form, with its error",
                    "content": {"text/html": {"schema": {"type": "string"}}}},
            "429": _ref("responses", "TooManySignUps"),
        },
        body="Registration",
    )
    # The credential is optional here: without it, sign-ups are throttled per address.
    operation["security"] = [{}, {"simulator": []}]
    del operation["responses"]["403"]
    return operation


MESSAGES = {"type": "array", "items": _ref("schemas", "Message")}

PATHS: dict[str, Any] = {
    "/latest": {
        "get": _operation("The latest recorded simulator action id",
                          {"200": _json(_ref("schemas", "Latest"), "The id")}, public=True),
    },
    "/register": {"post": _register_operation()},
    "/msgs": {
        "get": _operation("The newest public messages, newest first",
                          {"200": _json(MESSAGES, "The messages")}, paged=True),
    },
    "/msgs/{username}": {
        "get": _operation("A user's newest messages, newest first",
                          {"200": _json(MESSAGES, "The messages")}, path_user=True, paged=True),
        "post": _operation("Post a message as the user", {"204": _ref("responses", "NoContent")},
                           body="NewMessage", path_user=True),
    },
    "/fllws/{username}": {
        "get": _operation("Whom the user follows", {"200": _json(_ref("schemas", "Follows"), "The usernames")},
                          path_user=True, paged=True),
        "post": _operation("Follow or unfollow a user (idempotent: repeating changes nothing)",
                           {"204": _ref("responses", "NoContent")}, body="FollowChange", path_user=True),
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "MiniTwit simulator API",
        "version": "1.0.0",
        "description": "The JSON API that the course's simulator drives. Flagged messages never appear.",
    },
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "parameters": PARAMETERS,
        "responses": RESPONSES,
        "securitySchemes": {"simulator": {"type": "http", "scheme": "basic"}},
    },
    "security": [{"simulator": []}],
}


async def document(request: Request) -> Response:
    """The OpenAPI document of the simulator API."""
    return JSONResponse(DOCUMENT)
