"""The load replay: the simulator's recorded scenario sent to a server, N requests in flight.

Each action goes out as the course's simulator sends it (``POST /register``, ``POST /msgs/<u>``,
``POST /fllws/<u>`` with ``?latest=<action id>``, its JSON body and Basic credential, a new TCP
connection per request). Requests leave in scenario order with at most N in flight, but a write
waits for the writes it depends on: the register of each user it names, and the previous
follow/unfollow of the same pair; the simulator itself is strictly sequential, so no server may
see those reordered. After every write, ``reads`` reads drawn with a seeded RNG (users: those
registered earlier in the scenario; a read waits for that register too).

Success is judged as the simulator judges it: register 204 or 400 (already taken); tweet,
follow, unfollow 204; reads 200. Anything else, a timeout or a broken connection is a failure.
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from minitwit.paths import open_scenario

SIMULATOR_AUTH = "Basic c2ltdWxhdG9yOnN1cGVyX3NhZmUh"  # simulator:super_safe!, the course's
SLOW_MS = 300.0  # the simulator's client timeout
API_READS = ("read_msgs", "read_msgs_user", "read_fllws_user", "read_latest")
HTML_READS = ("html_public", "html_user")
WRITE_OK = {"register": (204, 400), "tweet": (204,), "follow": (204,), "unfollow": (204,)}


@dataclass(frozen=True)
class Action:
    """One line of the scenario file."""

    action_id: int
    command: str  # register, tweet, follow, unfollow
    username: str
    args: tuple[str, ...]


def read_scenario(path: Path, limit: int | None = None) -> list[Action]:
    """The scenario's actions (tab-separated: id, delay, timestamp, command, user, args...)."""
    actions = []
    with open_scenario(path) as lines:
        for number, line in enumerate(lines, start=1):
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) < 6 or fields[3] not in WRITE_OK:
                raise ValueError(f"{path}:{number}: not a scenario line")
            actions.append(Action(int(fields[0]), fields[3], fields[4], tuple(fields[5:])))
            if limit is not None and len(actions) >= limit:
                break
    return actions


@dataclass
class Request:
    kind: str
    method: str
    path: str
    body: bytes | None
    ok: tuple[int, ...]
    waits_for: list[asyncio.Event] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)


def user_path(username: str) -> str:
    return quote(username, safe="")


def write_request(action: Action) -> Request:
    user, latest = user_path(action.username), f"?latest={action.action_id}"
    if action.command == "register":
        body = {"username": action.username, "email": action.args[0], "pwd": action.args[-1]}
        path = "/register"
    elif action.command == "tweet":
        body, path = {"content": action.args[0]}, f"/msgs/{user}"
    else:
        body, path = {action.command: action.args[0]}, f"/fllws/{user}"
    return Request(action.command, "POST", path + latest, json.dumps(body).encode(), WRITE_OK[action.command])


def read_request(kind: str, username: str) -> Request:
    user = user_path(username)
    path = {"read_msgs": "/msgs?no=100", "read_msgs_user": f"/msgs/{user}?no=100",
            "read_fllws_user": f"/fllws/{user}?no=100", "read_latest": "/latest",
            "html_public": "/public", "html_user": f"/{user}"}[kind]
    return Request(kind, "GET", path, None, (200,))


def plan(actions: list[Action], reads: int, html: bool, seed: int) -> Iterator[Request]:
    """The requests in sending order, each with the events it must wait for."""
    rng = random.Random(seed)  # nosec B311 - a reproducible load pattern, not a secret
    kinds = API_READS + (HTML_READS if html else ())
    registered: dict[str, asyncio.Event] = {}
    last_of_pair: dict[tuple[str, str], asyncio.Event] = {}
    known: list[str] = []
    for action in actions:
        request = write_request(action)
        names = [action.username] + ([action.args[0]] if action.command in ("follow", "unfollow") else [])
        request.waits_for = [registered[name] for name in names if name in registered]
        if action.command in ("follow", "unfollow"):
            pair = (action.username, action.args[0])
            if pair in last_of_pair:
                request.waits_for.append(last_of_pair[pair])
            last_of_pair[pair] = request.done
        if action.command == "register" and action.username not in registered:
            registered[action.username] = request.done
            known.append(action.username)
        yield request
        for _ in range(reads if known else 0):
            username = rng.choice(known)
            read = read_request(rng.choice(kinds), username)
            read.waits_for = [registered[username]]
            yield read


@dataclass
class Outcome:
    kind: str
    status: int | str  # HTTP status, or the error's name
    ms: float | None  # None when no response came
    ok: bool


def client_session(base_url: str, *, keepalive: bool = False, timeout: float = 10.0,
                   ssl_context: ssl.SSLContext | None = None) -> Any:
    """An aiohttp session that sends as the simulator does: its credential on every request and,
    unless ``keepalive``, a new connection for each. ``ssl_context`` verifies an https:// server
    whose CA is not the system's (a test edge's own)."""
    import aiohttp  # the optional "bench" extra

    headers = {"Authorization": SIMULATOR_AUTH, "Content-Type": "application/json"}
    if not keepalive:
        headers["Connection"] = "close"
    connector = aiohttp.TCPConnector(limit=0, force_close=not keepalive, ssl=ssl_context or True)
    return aiohttp.ClientSession(base_url, connector=connector, headers=headers,
                                 timeout=aiohttp.ClientTimeout(total=timeout), skip_auto_headers=("User-Agent",))


async def send(session: Any, request: Request) -> Outcome:
    """Sends ``request`` once the requests it waits for are done, and marks it done whatever
    happens, so that no later request waits for ever."""
    import aiohttp

    try:
        for event in request.waits_for:
            await event.wait()
        started = time.perf_counter()
        try:
            async with session.request(request.method, request.path, data=request.body) as response:
                await response.read()
                ms = (time.perf_counter() - started) * 1000
                return Outcome(request.kind, response.status, ms, response.status in request.ok)
        except (TimeoutError, aiohttp.ClientError) as error:
            return Outcome(request.kind, type(error).__name__, None, False)
    finally:
        request.done.set()


async def run(base_url: str, requests: Iterator[Request], concurrency: int, *,
              keepalive: bool = False, timeout: float = 10.0,
              ssl_context: ssl.SSLContext | None = None) -> tuple[list[Outcome], float]:
    """Sends every request, ``concurrency`` at a time; returns the outcomes and the wall time
    from first send to last answer."""
    outcomes: list[Outcome] = []
    async with client_session(base_url, keepalive=keepalive, timeout=timeout, ssl_context=ssl_context) as session:

        async def worker() -> None:
            for request in requests:  # one shared iterator: requests leave in order
                outcomes.append(await send(session, request))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return outcomes, wall
