"""The simulator API's lane (api_lane.ApiLane) answers exactly as the full Starlette stack does.

Two real servers on two fresh databases, one as shipped (the lane) and one with every request
through Starlette's middleware and router (MINITWIT_BENCH_VARIANT=api-through-router), get the
same requests in the same order: successes, every refusal, and the requests the lane must hand
to the full stack (browsers' cross-site signals, unknown hosts, bodies without a length or over
the cap, encoded names, other methods). Status, body, headers, the database afterwards and the
metrics' labels must be the same. The one field allowed to differ is a message's `pub_date`: each
server stamps the time it wrote the message, to the second, and the two writes of one case can
fall on either side of a second. Each `pub_date` must still be a time with its zone, within the
test's run, before the two answers are compared.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from fixtures import SIMULATOR_AUTH, ThreadedServer, make_settings, scratch_database, sql

from minitwit.app import create_app

HOST = "127.0.0.1"
AUTH = {"Authorization": SIMULATOR_AUTH}
JSON = {**AUTH, "Content-Type": "application/json"}


def chunks(body: bytes) -> Iterator[bytes]:
    yield body  # a generator: requests sends it chunked, without a Content-Length


# (method, path, headers, body): in order; later requests see what earlier ones wrote.
CASES: list[tuple[str, str, dict[str, str], object]] = [
    ("POST", "/register?latest=1", JSON, b'{"username": "ann", "email": "ann@x.org", "pwd": "p"}'),
    ("POST", "/register?latest=2", JSON, b'{"username": "bob b", "email": "bob@x.org", "pwd": "p"}'),
    ("GET", "/latest", {}, None),
    ("POST", "/msgs/ann?latest=3", JSON, b'{"content": "hello"}'),
    ("POST", "/msgs/bob%20b?latest=4", JSON, b'{"content": "from bob"}'),
    ("POST", "/msgs/ann?latest=5", JSON, b"{not json"),
    ("POST", "/msgs/ann?latest=6", JSON, b'["a list"]'),
    ("POST", "/msgs/ann?latest=7", JSON, b'{"content": "\\ud800"}'),
    ("POST", "/msgs/ann?latest=8", JSON, b'{"content": ""}'),
    ("POST", "/msgs/nobody?latest=9", JSON, b'{"content": "x"}'),
    ("POST", "/msgs/ann?latest=10", {"Content-Type": "application/json"}, b'{"content": "no auth"}'),
    ("POST", "/msgs/ann?latest=not-a-number", JSON, b'{"content": "latest ignored"}'),
    ("POST", "/msgs/ann?latest=11", {**JSON, "Origin": "http://elsewhere.example"}, b'{"content": "x"}'),
    ("POST", "/msgs/ann?latest=12", {**JSON, "Sec-Fetch-Site": "same-origin"}, b'{"content": "same site"}'),
    ("POST", "/msgs/ann?latest=13", {**JSON, "Host": "elsewhere.example"}, b'{"content": "x"}'),
    ("POST", "/msgs/ann?latest=14", JSON, b'{"content": "' + b"x" * 70_000 + b'"}'),
    ("POST", "/msgs/ann?latest=15", JSON, chunks(b'{"content": "chunked"}')),
    ("GET", "/msgs?no=5&latest=16", AUTH, None),
    ("GET", "/msgs", {}, None),
    ("GET", "/msgs/ann?no=abc", AUTH, None),
    ("GET", "/msgs/bob%20b", AUTH, None),
    ("GET", "/msgs/a%2Fb?latest=17", AUTH, None),
    ("GET", "/msgs/", AUTH, None),
    ("GET", "/msgs/ann/more", AUTH, None),
    ("HEAD", "/msgs", AUTH, None),
    ("DELETE", "/msgs/ann", AUTH, None),
    ("POST", "/msgs", JSON, b'{"content": "x"}'),
    ("POST", "/fllws/ann?latest=18", JSON, b'{"follow": "bob b"}'),
    ("POST", "/fllws/ann?latest=19", JSON, b'{"follow": "ann"}'),
    ("POST", "/fllws/ann?latest=20", JSON, b'{"follow": "nobody"}'),
    ("POST", "/fllws/ann?latest=21", JSON, b"{}"),
    ("GET", "/fllws/ann?no=10&latest=22", AUTH, None),
    ("POST", "/fllws/ann?latest=23", JSON, b'{"unfollow": "bob b"}'),
    ("GET", "/fllws/nobody", AUTH, None),
    ("GET", "/fllws", {}, None),
    ("GET", "/latest?latest=24", {}, None),
]
VARYING_HEADERS = {"x-request-id", "date"}
WRITTEN_DURING_THE_RUN = "<a time within the test's run>"


def settle_pub_dates(document: object, since: datetime) -> None:
    """Checks each message's pub_date is a zoned time between `since` and now, then blanks it.

    The two servers stamp their own clock, to the second; every other byte must still match."""
    if not isinstance(document, list):
        return
    until = datetime.now(UTC)
    for message in document:
        if isinstance(message, dict) and "pub_date" in message:
            written = datetime.fromisoformat(message["pub_date"])
            assert written.tzinfo is not None, message
            # pub_date is truncated to the second, so a message written in the run's first
            # second may read up to a second before `since`.
            assert since - timedelta(seconds=1) <= written <= until, (message, since, until)
            message["pub_date"] = WRITTEN_DURING_THE_RUN


def answer(url: str, method: str, path: str, headers: dict[str, str], body: object, since: datetime) -> tuple:
    data = body if not isinstance(body, Iterator) else chunks(b'{"content": "chunked"}')
    response = requests.request(method, url + path, headers=headers, data=data, timeout=10)
    content = response.content
    if response.headers.get("content-type", "").startswith("application/json") and content:
        document = response.json()
        if isinstance(document, dict):
            document.pop("request_id", None)
        settle_pub_dates(document, since)
        content = json.dumps(document).encode()
    kept = {name.lower(): value for name, value in response.headers.items() if name.lower() not in VARYING_HEADERS}
    return response.status_code, content, kept


def counters(url: str) -> list[str]:
    """The request and simulator-action counters (their labels and counts), for comparison."""
    text = requests.get(url + "/metrics", timeout=10).text
    wanted = re.compile(r"^(minitwit_http_requests_total|minitwit_simulator_actions_total)\{")
    return sorted(line for line in text.splitlines() if wanted.match(line) and 'route="/metrics"' not in line)


@pytest.fixture
def two_databases(postgres_admin_url: str, template_database: str) -> Iterator[tuple[str, str]]:
    with scratch_database(postgres_admin_url, "minitwit_lane", template_database) as lane, \
            scratch_database(postgres_admin_url, "minitwit_stack", template_database) as stack:
        yield lane, stack


def test_the_lane_answers_as_the_full_stack_does(two_databases: tuple[str, str]) -> None:
    lane_db, stack_db = two_databases
    allowed = (HOST,)
    lane_app = create_app(make_settings(allowed_hosts=allowed), lane_db)
    stack_app = create_app(make_settings(allowed_hosts=allowed, bench_variant="api-through-router"), stack_db)
    since = datetime.now(UTC)
    with ThreadedServer(lane_app) as lane_url, ThreadedServer(stack_app) as stack_url:
        for method, path, headers, body in CASES:
            through_lane = answer(lane_url, method, path, headers, body, since)
            through_stack = answer(stack_url, method, path, headers, body, since)
            assert through_lane == through_stack, (method, path)
        assert counters(lane_url) == counters(stack_url)
        assert any('route="/msgs/{username}"' in line for line in counters(lane_url))
    for query in ("SELECT action_id FROM simulator_latest", "SELECT author_id, text FROM messages ORDER BY 1, 2",
                  "SELECT follower_id, followed_id FROM follows ORDER BY 1, 2"):
        assert sql(lane_db, query) == sql(stack_db, query), query
    assert len(sql(lane_db, "SELECT 1 FROM messages")) == 5  # the cases did write
