"""The eight scenarios of the stack suite (issue #10), each returning its figures and verdict."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import stack
from engine import E2EError, docker, log, run, wait_for
from traffic import CONCURRENCY, SIMULATOR_TIMEOUT, ActionPool, Answer, Background, call, replay_actions
from traffic import trust_edge_ca as trust_edge_ca_file

from minitwit.bench import replay
from minitwit.bench.server import BenchServer

SIMULATOR_HEADERS = {"Authorization": replay.SIMULATOR_AUTH, "Content-Type": "application/json"}


@dataclass
class Result:
    number: int
    title: str
    passed: bool
    figures: dict[str, object] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def check(self, condition: bool, problem: str) -> None:
        if not condition:
            self.problems.append(problem)
            self.passed = False


@dataclass
class Context:
    """What the scenarios share: the deployed stack, the images, the traffic."""

    repo: Path
    workdir: Path
    swarm: stack.Swarm
    stack_file: Path
    env: dict[str, str]  # MINITWIT_IMAGE, MINITWIT_VERSION for `docker stack deploy`
    version: str
    edge: str  # http://127.0.0.1[:port]
    services: dict[str, int]  # service -> replicas the stack asks for
    actions: list[replay.Action]
    replayed: int = 0
    pool: ActionPool | None = None
    build_image: Any = None  # (version, dockerfile_suffix) -> image tag

    def background(self, max_seconds: float) -> Background:
        if self.pool is None:  # scenario 2 did not run: start at the scenario's beginning
            self.pool = ActionPool(self.actions, 0)
        return Background(self.edge, self.pool, max_seconds=max_seconds)


# --- helpers -------------------------------------------------------------------------------------


def replica_versions(app: str = "app") -> list[str]:
    """The version each running app container reports in /health, asked inside the container."""
    versions = []
    for container in stack.containers(stack.service(app)):
        text = docker("exec", container, "python", "-c",
                      "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:5000/health',"
                      " timeout=4).read().decode())", check=False, timeout=30)
        match = re.search(r'"version"\s*:\s*"([^"]*)"', text)
        versions.append(match.group(1) if match else "?")
    return versions


def edge_versions(edge: str, count: int = 30) -> Counter[str]:
    seen: Counter[str] = Counter()
    with requests.Session() as session:
        for _ in range(count):
            answer = call(session, "GET", edge + "/health", "health", timeout=5, headers={"Connection": "close"})
            seen[answer.version or str(answer.status)] += 1
    return seen


def tracebacks(full_name: str) -> int:
    return stack.service_logs(full_name).count("Traceback")


def expected_state(actions: list[replay.Action]) -> dict[str, int]:
    """What the scenario implies, as sim_tests computes it: users, messages, follow pairs, latest."""
    follows: set[tuple[str, str]] = set()
    users: set[str] = set()
    messages = 0
    for action in actions:
        if action.command == "register":
            users.add(action.username)
        elif action.command == "tweet":
            messages += 1
        elif action.command == "follow":
            follows.add((action.username, action.args[0]))
        elif action.command == "unfollow":
            follows.discard((action.username, action.args[0]))
    return {"users": len(users), "messages": messages, "follows": len(follows), "latest": actions[-1].action_id}


def state_matches(actions: list[replay.Action], found: dict[str, int]) -> bool:
    """The database holds what the scenario implies. With CONCURRENCY requests in flight the last
    few writes may land in any order, so `latest` is one of the last CONCURRENCY action ids (the
    simulator, one request at a time, would leave exactly the last)."""
    wanted = expected_state(actions)
    last_ids = {action.action_id for action in actions[-CONCURRENCY:]}
    return all(found[key] == wanted[key] for key in ("users", "messages", "follows")) and found["latest"] in last_ids


def trust_edge_ca(workdir: Path) -> None:
    """The edge serves HTTPS with Caddy's internal CA (MINITWIT_TLS=internal): trust that CA."""
    def read() -> str | None:
        proxy = (stack.containers(stack.service("proxy")) or [None])[0]
        if proxy is None:
            return None
        text = docker("exec", proxy, "cat", "/data/caddy/pki/authorities/local/root.crt", check=False)
        return text if "BEGIN CERTIFICATE" in text else None

    path = workdir / "edge-root.crt"
    path.write_text(wait_for("the edge's internal CA certificate", read, 120) + "\n")
    trust_edge_ca_file(str(path))


def ready_through_edge(edge: str) -> int:
    try:
        return requests.get(edge + "/ready", timeout=5).status_code
    except requests.RequestException:
        return 0


# --- 1. deploy from nothing ----------------------------------------------------------------------


def deploy_from_nothing(ctx: Context) -> Result:
    result = Result(1, "deploy from nothing", True)
    started = time.monotonic()
    ctx.swarm.deploy(ctx.stack_file, ctx.env)
    try:
        stack.wait_converged(ctx.services, timeout=420)
    except E2EError as error:
        result.check(False, str(error))
    for name, spec in stack.load(ctx.stack_file)["services"].items():
        if stack.is_one_shot(spec):  # db-monitoring-role: runs once the database answers
            try:
                wait_for(f"one-shot {name} to complete", lambda n=name: stack.completed(stack.service(n)), 240)
                result.figures[f"{name}"] = "complete"
            except E2EError as error:
                result.figures[f"{name}"] = "not complete"
                result.check(False, str(error))
    trust_edge_ca(ctx.workdir)
    wait_for("/ready 200 through the edge", lambda: ready_through_edge(ctx.edge) == 200, 120)
    result.figures["converged_s"] = round(time.monotonic() - started, 1)
    app = stack.service("app")
    _, desired = stack.replicas(app)
    healthy = len(stack.healthy_containers(app))
    result.figures["app_replicas"] = f"{healthy}/{desired} healthy"
    result.check(healthy == desired == ctx.services["app"], f"app: {healthy} healthy of {desired}")
    status = ready_through_edge(ctx.edge)
    result.figures["ready_via_edge"] = status
    result.check(status == 200, f"/ready through the edge answered {status}")
    restarts = stack.task_restarts(app)
    traces = tracebacks(app)
    result.figures["app_restarts"] = restarts
    result.figures["app_tracebacks"] = traces
    result.check(traces == 0, f"{traces} tracebacks in the app's logs")
    waited = "waiting for postgresql" in stack.service_logs(app).lower()  # minitwit.startup's line
    result.figures["waited_for_db"] = waited
    result.check(restarts == 0 or waited, f"app tasks restarted {restarts} times without waiting")
    return result


# --- 2. traffic ----------------------------------------------------------------------------------

REPLAY_ACTIONS = 5000


def traffic(ctx: Context) -> Result:
    result = Result(2, f"replay of {REPLAY_ACTIONS} actions through the edge", True)
    result.figures["timeout_s"] = SIMULATOR_TIMEOUT
    actions = ctx.actions[:REPLAY_ACTIONS]
    report = replay_actions(ctx.edge, actions)
    ctx.replayed = len(actions)
    ctx.pool = ActionPool(ctx.actions, len(actions))
    result.figures.update(requests=report["requests"], failed=report["failed"],
                          over_300ms=report["slow_over_300ms"], rps=report["throughput_rps"],
                          p50_ms=report["latency_ms"]["p50"], p99_ms=report["latency_ms"]["p99"],
                          failures=report["failures"] or "-")
    result.check(report["failed"] == 0, f"{report['failed']} failed requests: {report['failures']}")
    wanted, found = expected_state(actions), stack.counts()
    matches = state_matches(actions, found)
    result.figures["state"] = f"as implied {found}" if matches else f"{found} != {wanted}"
    result.check(matches, f"database {found}, scenario implies {wanted}")
    log("the same replay against one `minitwit serve` outside Docker, for comparison")
    with BenchServer(workers=1) as server:
        baseline = replay_actions(server.url, actions)
    result.figures["baseline_over_300ms"] = baseline["slow_over_300ms"]
    result.figures["baseline_rps"] = baseline["throughput_rps"]
    result.figures["baseline_p50_ms"] = baseline["latency_ms"]["p50"]
    result.figures["baseline_p99_ms"] = baseline["latency_ms"]["p99"]
    result.figures["baseline_failed"] = baseline["failed"]
    if baseline["throughput_rps"] and report["throughput_rps"]:
        result.figures["rps_ratio_stack/serve"] = round(report["throughput_rps"] / baseline["throughput_rps"], 2)
    return result


# --- 6. data survives the stack ------------------------------------------------------------------


def data_survives(ctx: Context, stack_name: str = stack.STACK) -> Result:
    result = Result(6, "stack rm and deploy again keeps the data", True)
    if ctx.pool is None:  # scenario 2 did not run: some data to lose first
        ctx.pool = ActionPool(ctx.actions, 0)
        replay_actions(ctx.edge, ctx.pool.take(300))
    before = stack.counts()
    started = time.monotonic()
    ctx.swarm.remove(stack.STACK)
    ctx.swarm.deploy(ctx.stack_file, ctx.env, name=stack_name)
    if stack_name != stack.STACK:
        result.figures["redeployed_as"] = stack_name
    stack.current["stack"] = stack_name
    stack.wait_converged(ctx.services, timeout=300)
    wait_for("/ready 200 through the edge", lambda: ready_through_edge(ctx.edge) == 200, 120)
    result.figures["redeploy_s"] = round(time.monotonic() - started, 1)
    after = stack.counts()
    result.figures["before"] = before
    result.figures["after"] = after
    result.check(before == after and before["users"] > 0, f"before {before}, after {after}")
    return result


# --- 7. backups in the stack ---------------------------------------------------------------------


def backups(ctx: Context) -> Result:
    result = Result(7, "on-demand backup, restored into a fresh database", True)
    container = wait_for("the backup container", lambda: (stack.containers(stack.service("backup")) or [None])[0], 60)
    before = stack.counts()
    output = docker("exec", container, "minitwit", "backup", "--dir", "/backups", "--keep", "14", timeout=300)
    dumps = docker("exec", container, "sh", "-c", "ls -t /backups/*.dump | head -n 1")
    result.check(bool(dumps), f"no dump in /backups after `minitwit backup`: {output}")
    newest = dumps.splitlines()[0] if dumps else ""
    result.figures["dump"] = Path(newest).name
    size = docker("exec", container, "stat", "-c", "%s", newest, check=False)
    result.figures["dump_bytes"] = int(size) if size.isdigit() else size
    stack.psql("DROP DATABASE IF EXISTS e2e_restore", "postgres")
    stack.psql("CREATE DATABASE e2e_restore OWNER minitwit", "postgres")
    url = stack.database_url(ctx.swarm.secrets.postgres_password, "e2e_restore")
    started = time.monotonic()
    restored = docker("exec", "-e", "DATABASE_URL_FILE=", "-e", f"DATABASE_URL={url}", container,
                      "minitwit", "restore", newest, check=False, timeout=300)
    result.figures["restore_s"] = round(time.monotonic() - started, 1)
    after = stack.counts("e2e_restore")
    result.figures["counts"] = after
    result.check(after == before, f"restored {after}, live {before}; restore said: {restored[-500:]}")
    stack.psql("DROP DATABASE IF EXISTS e2e_restore", "postgres")
    return result


# --- 8. monitoring sees the replicas -------------------------------------------------------------


def monitoring(ctx: Context) -> Result:
    result = Result(8, "Prometheus: the 3 app tasks, exporters, backups", True)
    if "prometheus" not in ctx.services:
        result.check(False, "no Prometheus in the deployed stack")
        return result
    container = wait_for("the prometheus container",
                         lambda: (stack.containers(stack.service("prometheus")) or [None])[0], 60)

    def query(expr: str) -> list[dict]:
        text = docker("exec", container, "wget", "-qO-", "http://127.0.0.1:9090/api/v1/query?query="
                      + requests.utils.quote(expr, safe=""), timeout=30)
        import json
        return json.loads(text)["data"]["result"]

    def three_up() -> list[dict] | None:
        found = query('up{job="minitwit"}')
        return found if len(found) == ctx.services["app"] and all(r["value"][1] == "1" for r in found) else None

    try:
        ups = wait_for("3 app targets with up == 1", three_up, timeout=150, interval=5)
    except E2EError as error:
        result.check(False, f"{error}; targets now: {query('up')}")
        return result
    result.figures["targets_up"] = f"{len(ups)}/{ctx.services['app']}"
    builds = query("minitwit_build_info")
    versions = sorted({r["metric"].get("version", "?") for r in builds})
    result.figures["build_info_versions"] = ",".join(versions)
    result.check(versions == [ctx.version] and len(builds) == ctx.services["app"],
                 f"minitwit_build_info: {builds}")
    watch_machines(ctx, result, query)
    return result


def db_volume_mountpoint() -> str:
    """The host mount point of the filesystem that holds the database volume (as node_exporter names it)."""
    volume = docker("volume", "inspect", "-f", "{{.Mountpoint}}", stack.DB_VOLUME)
    return run(["df", "--output=target", volume], timeout=30).stdout.splitlines()[-1].strip()


def watch_machines(ctx: Context, result: Result, query: Callable[[str], list[dict]]) -> None:
    """Issue 15: the exporters are scraped, the database volume's disk is seen, backups are fresh."""
    for job in ("node", "postgres"):
        if not ctx.services.get({"node": "node-exporter", "postgres": "postgres-exporter"}[job]):
            result.check(False, f"no {job} exporter in the deployed stack")
            continue
        try:
            wait_for(f"job {job} with up == 1", lambda j=job: [r for r in query(f'up{{job="{j}"}}')
                                                              if r["value"][1] == "1"], timeout=120, interval=5)
            result.figures[f"{job}_up"] = 1
        except E2EError as error:
            result.figures[f"{job}_up"] = 0
            result.check(False, f"{error}; targets now: {query('up')}")
    mountpoint = db_volume_mountpoint()
    avail = query(f'node_filesystem_avail_bytes{{job="node",mountpoint="{mountpoint}"}}')
    result.figures["db_volume_fs_avail"] = (f"{int(float(avail[0]['value'][1])) >> 30} GiB on {mountpoint}" if avail
                                            else f"missing for {mountpoint}")
    result.check(bool(avail), f"no node_filesystem_avail_bytes for {mountpoint}, the db volume's filesystem")
    # A backup on demand, then its freshness metric (node_exporter's textfile) must move past it.
    container = wait_for("the backup container", lambda: (stack.containers(stack.service("backup")) or [None])[0], 60)
    before = time.time() - 2
    docker("exec", container, "minitwit", "backup", "--dir", "/backups", "--keep", "14", timeout=300)

    def fresh() -> list[dict]:
        return [r for r in query("minitwit_backup_last_success_timestamp_seconds")
                if float(r["value"][1]) >= before]

    try:
        found = wait_for("a fresh minitwit_backup_last_success_timestamp_seconds", fresh, timeout=90, interval=5)
        result.figures["backup_metric_age_s"] = round(time.time() - float(found[0]["value"][1]), 1)
    except E2EError as error:
        result.figures["backup_metric_age_s"] = "stale"
        result.check(False, f"{error}; now: {query('minitwit_backup_last_success_timestamp_seconds')}")


# --- 3. rolling update under load ----------------------------------------------------------------


def signed_in_cookie(edge: str) -> tuple[str, str]:
    """A user signed in through the web form: (username, the session cookie's value)."""
    username = f"e2e-session-{int(time.time())}"
    password = "e2e-" + username
    body = {"username": username, "email": f"{username}@example.org", "pwd": password}
    response = requests.post(edge + "/register", json=body, headers=SIMULATOR_HEADERS, timeout=10)
    if response.status_code != 204:
        raise E2EError(f"register {username}: {response.status_code} {response.text[:200]}")
    response = requests.post(edge + "/login", data={"username": username, "password": password},
                             allow_redirects=False, timeout=10)
    cookie = response.cookies.get("minitwit_session")
    if not cookie:
        raise E2EError(f"sign-in gave no session cookie: {response.status_code} {response.text[:200]}")
    return username, cookie


def cookie_signs_in(edge: str, username: str, cookie: str) -> bool:
    page = requests.get(edge + "/", headers={"Cookie": f"minitwit_session={cookie}"}, timeout=10)
    return page.status_code == 200 and f"[{username}]" in page.text


def rolling_update(ctx: Context) -> Result:
    result = Result(3, "rolling update under load", True)
    username, cookie = signed_in_cookie(ctx.edge)
    new_version = ctx.version.replace("e2e.1", "e2e.2")
    new_image = ctx.build_image(new_version)
    update = deploy_under_load(ctx, result, new_image, new_version, "update_s", max_seconds=420, timeout=400)
    result.check(update == "completed", f"update ended {update}")
    check_replica_versions(ctx, result, new_version)
    kept = cookie_signs_in(ctx.edge, username, cookie)
    result.figures["old_session_cookie"] = "signed in" if kept else "signed out"
    result.check(kept, "the session cookie from before the update no longer signs in")
    ctx.env = {**ctx.env, "MINITWIT_IMAGE": new_image, "MINITWIT_VERSION": new_version}
    ctx.version = new_version
    return result


def deploy_under_load(ctx: Context, result: Result, image: str, version: str, seconds_figure: str, *,
                      max_seconds: float, timeout: float) -> str:
    """Deploys the stack with the app's ``image`` and ``version`` while the scenario's traffic
    runs, and waits for the update to settle (a rollback included: its tasks converged). Puts the
    time taken under ``seconds_figure`` and the traffic's totals in ``result``, checks that no
    request failed, and returns the update's final state."""
    started = time.monotonic()
    with ctx.background(max_seconds=max_seconds) as load:
        time.sleep(5)
        ctx.swarm.deploy(ctx.stack_file, {**ctx.env, "MINITWIT_IMAGE": image, "MINITWIT_VERSION": version})
        state = wait_update(stack.service("app"), timeout=timeout)
        if state == "rollback_completed":
            stack.wait_converged({"app": ctx.services["app"]}, timeout=120)
        time.sleep(5)
    result.figures[seconds_figure] = round(time.monotonic() - started, 1)
    result.figures["update_state"] = state
    totals = load.totals()
    result.figures.update(requests=totals["requests"], failed=totals["failed"], over_300ms=totals["over_300ms"],
                          failures=totals["failures"] or "-")
    result.check(totals["requests"] > 0 and totals["failed"] == 0, f"{totals['failed']} failed: {totals['failures']}")
    return state


def check_replica_versions(ctx: Context, result: Result, version: str) -> None:
    """Every app replica reports ``version`` in its /health."""
    versions = replica_versions()
    result.figures["replica_versions"] = ",".join(sorted(set(versions))) + f" x{len(versions)}"
    result.check(versions == [version] * ctx.services["app"], f"replicas report {versions}, want {version}")


def wait_update(full_name: str, timeout: float) -> str:
    """The service's UpdateStatus.State once it settles (completed, rollback_completed, paused...)."""
    settled = {"completed", "rollback_completed", "paused", "rollback_paused"}

    def state() -> str | None:
        value = docker("service", "inspect", "--format", "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
                       full_name)
        return value if value in settled else None

    time.sleep(3)
    try:
        return wait_for(f"{full_name}'s update to settle", state, timeout, interval=3)
    except E2EError:
        return docker("service", "inspect", "--format", "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
                      full_name) or "unknown"


# --- 4. automatic rollback -----------------------------------------------------------------------


def automatic_rollback(ctx: Context) -> Result:
    result = Result(4, "an image that never gets healthy is rolled back", True)
    broken_version = ctx.version.replace("e2e.2", "e2e.broken").replace("e2e.1", "e2e.broken")
    broken = ctx.build_image(broken_version, broken=True)
    state = deploy_under_load(ctx, result, broken, broken_version, "rollback_s", max_seconds=480, timeout=450)
    result.check(state == "rollback_completed", f"update ended {state}, not rollback_completed")
    check_replica_versions(ctx, result, ctx.version)
    # The stack file now names the broken image: deploy the good one again so later steps match.
    if state != "rollback_completed":
        ctx.swarm.deploy(ctx.stack_file, ctx.env)
        wait_update(stack.service("app"), timeout=300)
    return result


# --- 5. database fault ---------------------------------------------------------------------------

HANG_LIMIT_S = 5.0


def database_fault(ctx: Context) -> Result:
    result = Result(5, "PostgreSQL killed under traffic", True)
    app = stack.service("app")
    app_before = set(stack.containers(app))
    db_before = stack.containers(stack.service("db"))
    stop = threading.Event()
    answers: list[Answer] = []
    acknowledged: list[str] = []
    writer = f"e2e-fault-{int(time.time())}"
    requests.post(ctx.edge + "/register", headers=SIMULATOR_HEADERS, timeout=10,
                  json={"username": writer, "email": f"{writer}@example.org", "pwd": "x" * 12})

    def write_loop(worker: int) -> None:
        with requests.Session() as session:
            for number in range(100000):
                if stop.is_set():
                    return
                content = f"fault write {worker}-{number}"
                answer = call(session, "POST", f"{ctx.edge}/msgs/{writer}", "write", timeout=HANG_LIMIT_S + 1,
                              json={"content": content}, headers={**SIMULATOR_HEADERS, "Connection": "close"})
                answers.append(answer)
                if answer.status == 204:
                    acknowledged.append(content)
                time.sleep(0.05)

    def read_loop() -> None:
        with requests.Session() as session:
            for _ in range(100000):
                if stop.is_set():
                    return
                answers.append(call(session, "GET", f"{ctx.edge}/msgs?no=20", "read", timeout=HANG_LIMIT_S + 1,
                                    headers={**SIMULATOR_HEADERS, "Connection": "close"}))
                time.sleep(0.05)

    threads = [threading.Thread(target=write_loop, args=(n,), daemon=True) for n in range(2)]
    threads += [threading.Thread(target=read_loop, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(5)
        killed_at = time.monotonic()
        for container in db_before:
            docker("kill", container)
        log("killed the PostgreSQL task; waiting for Swarm to start another")
        stack.wait_converged({"db": 1}, timeout=180)
        wait_for("/ready 200 again", lambda: ready_through_edge(ctx.edge) == 200, 120, interval=1)
        result.figures["recovered_s"] = round(time.monotonic() - killed_at, 1)
        time.sleep(5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    statuses = Counter(str(a.status) for a in answers)
    result.figures["answers"] = dict(statuses)
    slowest = max((a.seconds for a in answers), default=0.0)
    result.figures["slowest_s"] = round(slowest, 2)
    result.check(not any(a.status == 500 for a in answers), f"{statuses['500']} answers were 500")
    unexpected = {k: v for k, v in statuses.items() if k not in ("200", "204", "503")}
    result.check(not unexpected, f"answers other than 200/204/503: {unexpected}")
    result.check(slowest <= HANG_LIMIT_S, f"a request took {slowest:.1f} s")
    result.check(statuses["503"] > 0, "no 503 seen: did the outage reach the app?")
    app_after = set(stack.containers(app))
    result.figures["app_tasks_restarted"] = len(app_before - app_after)
    result.check(app_after == app_before, "app containers changed: tasks were restarted")
    stored = stored_messages(ctx.edge, writer)
    lost = [content for content in acknowledged if content not in stored]
    result.figures["acknowledged_writes"] = len(acknowledged)
    result.figures["lost_writes"] = len(lost)
    result.check(not lost, f"{len(lost)} acknowledged writes lost, e.g. {lost[:3]}")
    return result


def stored_messages(edge: str, username: str) -> set[str]:
    response = requests.get(f"{edge}/msgs/{username}?no=100000", headers=SIMULATOR_HEADERS, timeout=30)
    response.raise_for_status()
    return {message["content"] for message in response.json()}
