"""/metrics over real HTTP: per-route series after real traffic, business gauges equal to the
database, bounded label values, and the bearer token."""

from __future__ import annotations

import base64
import csv
import json
import re
from urllib.parse import quote

import requests
from fixtures import SIMULATOR_AUTH, LiveServer, sql

from minitwit.app import routes
from minitwit.observability.metrics import HTTP_BUCKETS, UNMATCHED
from minitwit.paths import open_scenario, scenario_path

HEADERS = {"Authorization": SIMULATOR_AUTH, "Content-Type": "application/json"}
WRONG_CREDENTIAL = {"Authorization": "Basic " + base64.b64encode(b"nobody:wrong").decode()}
SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")
LABEL = re.compile(r'(\w+)="([^"]*)"')
TEMPLATES = {route.path_format for route in routes} | {UNMATCHED}  # type: ignore[attr-defined]
SCENARIO = scenario_path()

Samples = list[tuple[str, dict[str, str], float]]


def scrape(server: LiveServer, **kwargs: object) -> Samples:
    response = server.get("/metrics", **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = []
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            match = SAMPLE.match(line)
            assert match, f"not a Prometheus sample line: {line!r}"
            samples.append((match["name"], dict(LABEL.findall(match["labels"] or "")), float(match["value"])))
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    found = [v for n, lbls, v in samples if n == name and all(lbls.get(k) == x for k, x in labels.items())]
    assert len(found) == 1, f"{name}{labels}: {len(found)} samples"
    return found[0]


def label_values(samples: Samples, label: str) -> set[str]:
    return {lbls[label] for _, lbls, _ in samples if label in lbls}


def database_totals(url: str) -> dict[str, int]:
    row = sql(url, "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM messages), "
                   "(SELECT count(*) FROM follows), (SELECT action_id FROM simulator_latest)")[0]
    return dict(zip(("users", "messages", "follows", "latest"), row, strict=True))


def assert_business_gauges_match(samples: Samples, url: str) -> None:
    totals = database_totals(url)
    for name, expected in totals.items():
        assert value(samples, f"minitwit_{name}") == expected, name


def post(server: LiveServer, path: str, body: dict, latest: int | None = None, headers: dict | None = None):
    params = {"latest": latest} if latest is not None else None
    return server.post(path, data=json.dumps(body), headers=headers or HEADERS, params=params)


def drive_traffic(server: LiveServer) -> None:
    """Simulator and browser traffic with every kind of outcome, including unknown users and
    random paths (which must never show up as label values)."""
    for n, name in enumerate(("Alice Smith", "bob", "carol")):
        registered = post(server, "/register", {"username": name, "email": f"{n}@x.org", "pwd": "pw"}, latest=n)
        assert registered.status_code == 204
    assert post(server, "/register", {"username": "bob", "email": "b@x.org", "pwd": "pw"}, latest=3).status_code == 400
    for n in range(3):
        tweeted = post(server, f"/msgs/{quote('Alice Smith')}", {"content": f"tweet {n}"}, latest=10 + n)
        assert tweeted.status_code == 204
    assert post(server, "/msgs/bob", {"content": "hello"}).status_code == 204
    assert post(server, "/fllws/bob", {"follow": "Alice Smith"}).status_code == 204
    assert post(server, "/fllws/bob", {"follow": "carol"}).status_code == 204
    assert post(server, "/fllws/bob", {"unfollow": "carol"}, latest=42).status_code == 204
    assert server.get("/msgs", headers=HEADERS).status_code == 200
    assert server.get("/msgs", headers=WRONG_CREDENTIAL).status_code == 403
    assert server.get("/msgs/bob", headers=HEADERS).status_code == 200
    assert server.get("/msgs/nobody-xyz", headers=HEADERS).status_code == 404
    assert server.get("/fllws/bob", headers=HEADERS).status_code == 200
    assert server.get("/latest").json() == {"latest": 42}
    assert server.get("/public").status_code == 200
    assert server.get("/bob").status_code == 200
    assert server.get("/no/such/page/r4nd0m").status_code == 404
    assert server.get("/deeply/nested/r4nd0m/path").status_code == 404
    assert requests.put(server.url + "/msgs/bob", timeout=10).status_code == 405


def test_metrics_after_traffic(server: LiveServer) -> None:
    drive_traffic(server)
    samples = scrape(server)

    requests_total = "minitwit_http_requests_total"
    assert value(samples, requests_total, route="/register", method="POST", status="204") == 3
    assert value(samples, requests_total, route="/register", method="POST", status="400") == 1
    assert value(samples, requests_total, route="/msgs/{username}", method="POST", status="204") == 4
    assert value(samples, requests_total, route="/msgs/{username}", method="GET", status="404") == 1
    assert value(samples, requests_total, route="/fllws/{username}", method="POST", status="204") == 3
    assert value(samples, requests_total, route="/msgs", method="GET", status="403") == 1
    assert value(samples, requests_total, route="/{username}", method="GET", status="200") == 1
    assert value(samples, requests_total, route=UNMATCHED, method="GET", status="404") == 2
    assert value(samples, requests_total, route=UNMATCHED, method="PUT", status="405") == 1

    # Bounded labels: route templates only, never a username or a requested path.
    assert label_values(samples, "route") <= TEMPLATES
    assert not {v for _, lbls, _ in samples for v in lbls.values()
                if re.search(r"Alice|bob|carol|nobody|r4nd0m", v)}

    # Latency histogram: buckets on both sides of the simulator's 300 ms timeout.
    duration = "minitwit_http_request_duration_seconds"
    buckets = {lbls["le"] for n, lbls, _ in samples if n == f"{duration}_bucket"}
    assert {str(float(b)) for b in HTTP_BUCKETS} | {"+Inf"} == buckets
    assert {"0.005", "0.3", "1.0"} <= buckets
    count = value(samples, f"{duration}_count", route="/msgs/{username}", method="POST")
    assert count == 4
    assert value(samples, f"{duration}_bucket", route="/msgs/{username}", method="POST", le="+Inf") == count
    assert value(samples, f"{duration}_sum", route="/msgs/{username}", method="POST") > 0
    assert value(samples, "minitwit_http_requests_in_flight") == 1  # this scrape

    actions = "minitwit_simulator_actions_total"
    assert value(samples, actions, action="register", outcome="success") == 3
    assert value(samples, actions, action="register", outcome="client_error") == 1
    assert value(samples, actions, action="tweet", outcome="success") == 4
    assert value(samples, actions, action="follow", outcome="success") == 2
    assert value(samples, actions, action="unfollow", outcome="success") == 1
    assert value(samples, actions, action="read_msgs", outcome="unauthorized") == 1
    assert value(samples, actions, action="read_msgs_user", outcome="client_error") == 1
    assert value(samples, actions, action="read_follows", outcome="success") == 1
    assert value(samples, actions, action="latest", outcome="success") == 1

    assert_business_gauges_match(samples, server.database_url)
    assert value(samples, "minitwit_users") == 3 and value(samples, "minitwit_latest") == 42

    queries = label_values(samples, "query")
    assert {"create_user_with_key", "simulator_post_message", "simulator_follow", "simulator_unfollow", "record_latest", "get_latest"} <= queries
    assert value(samples, "minitwit_db_query_duration_seconds_count", query="simulator_post_message") == 4
    assert value(samples, "minitwit_db_pool_size") >= 1
    assert value(samples, "minitwit_db_connections_in_use") >= 0
    assert value(samples, "process_cpu_seconds_total") > 0
    assert value(samples, "process_resident_memory_bytes") > 10_000_000
    assert value(samples, "process_start_time_seconds") > 1_600_000_000


def test_business_gauges_follow_deletes_and_cascades(server: LiveServer) -> None:
    drive_traffic(server)
    sql(server.database_url, "DELETE FROM users WHERE username = 'Alice Smith'")  # cascades
    sql(server.database_url, "INSERT INTO follows (follower_id, followed_id) "
                             "SELECT a.user_id, b.user_id FROM users a, users b WHERE a.user_id <> b.user_id "
                             "ON CONFLICT DO NOTHING")
    samples = scrape(server)
    assert_business_gauges_match(samples, server.database_url)
    assert value(samples, "minitwit_users") == 2 and value(samples, "minitwit_messages") == 1


def test_metrics_need_the_bearer_token_when_one_is_set(server_factory) -> None:
    server = server_factory(metrics_token="s3cret-metrics-token")
    assert server.get("/metrics").status_code == 401
    assert server.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert server.get("/metrics", headers={"Authorization": "Basic s3cret-metrics-token"}).status_code == 401
    assert server.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics-token-and-more"}).status_code == 401
    refused = server.get("/metrics")
    assert "minitwit_" not in refused.text and refused.headers["www-authenticate"].startswith("Bearer")
    samples = scrape(server, headers={"Authorization": "Bearer s3cret-metrics-token"})
    assert value(samples, "minitwit_http_requests_total", route="/metrics", method="GET", status="401") == 5


def test_metrics_are_open_without_a_token_outside_production(server: LiveServer) -> None:
    assert server.get("/metrics").status_code == 200


def read_scenario(limit: int) -> list[list[str]]:
    with open_scenario(SCENARIO) as handle:
        rows = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [row for _, row in zip(range(limit), rows, strict=False)]


def test_after_a_simulator_replay_metrics_match_the_database(server: LiveServer) -> None:
    """The acceptance check on a prefix of the recorded scenario, sent as the simulator sends it."""
    actions = read_scenario(300)
    usernames = set()
    for row in actions:
        action_id, command, user, args = int(row[0]), row[3], row[4], row[5:]
        usernames.add(user)
        if command == "register":
            response = post(server, "/register", {"username": user, "email": args[0], "pwd": args[-1]}, action_id)
        elif command == "tweet":
            response = post(server, f"/msgs/{quote(user)}", {"content": args[0]}, action_id)
        else:
            response = post(server, f"/fllws/{quote(user)}", {command: args[0]}, action_id)
        assert response.status_code in (204, 400), (row, response.text)
        server.get(f"/msgs/{quote(user)}", headers=HEADERS, params={"no": 5})

    samples = scrape(server)
    assert_business_gauges_match(samples, server.database_url)
    assert value(samples, "minitwit_latest") == int(actions[-1][0])
    tweets = sum(1 for row in actions if row[3] == "tweet")
    route = "/msgs/{username}"
    assert value(samples, "minitwit_http_requests_total", route=route, method="POST", status="204") == tweets
    assert value(samples, "minitwit_simulator_actions_total", action="tweet", outcome="success") == tweets
    assert value(samples, "minitwit_http_request_duration_seconds_count", route=route, method="GET") == len(actions)
    assert label_values(samples, "route") <= TEMPLATES
    labels = {v for _, lbls, _ in samples for v in lbls.values()}
    assert not labels & usernames and not labels & {quote(u) for u in usernames}


def test_buckets_count_as_aioprometheus_does() -> None:
    """The bisecting histogram publishes exactly what aioprometheus's own observe would have."""
    import random

    from aioprometheus.histogram import Histogram as AioBuckets

    from minitwit.observability.metrics import HTTP_BUCKETS, Buckets

    ours, theirs = Buckets(*HTTP_BUCKETS), AioBuckets(*HTTP_BUCKETS)
    values = [0.0, 0.005, 0.0050001, 0.3, 5.0, 7.5, *(random.Random(4).expovariate(20) for _ in range(2000))]
    for value in values:
        ours.observe(value)
        theirs.observe(value)
    ours.publish()
    assert ours.buckets == theirs.buckets
    assert (ours.observations, ours.sum) == (theirs.observations, theirs.sum)
