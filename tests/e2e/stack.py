"""The stack as shipped (stack.yml), deployed to a one-node Swarm under the name `minitwit`.

The only changes to stack.yml are in a generated copy: services whose image is neither pullable
nor has a stand-in are left out (and reported), relative `file:` paths are made absolute, and a
failure demonstration (E2E_BREAK) may change one setting on purpose.
"""

from __future__ import annotations

import copy
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from engine import E2EError, docker, docker_json, lines, run, wait_for

STACK = "minitwit"
SIMULATOR_PASSWORD = "super_safe!"  # the course's simulator credential, which the replay sends
OPS_ROOT = Path("/opt/minitwit/ops")
DB_VOLUME = "minitwit_db_data"  # stack.yml names it, whatever the stack is called


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def images(spec: dict[str, Any], env: dict[str, str]) -> dict[str, str]:
    """service -> image, with ${VAR...} taken from ``env`` (the app image comes from there)."""
    found = {}
    for name, service in spec["services"].items():
        image = str(service.get("image", ""))
        if image.startswith("${"):
            variable = image[2:].split(":", 1)[0].split("}", 1)[0]
            image = env[variable]
        found[name] = image
    return found


def generate(source: Path, dest: Path, drop: set[str], mutate: Any = None) -> dict[str, Any]:
    """A copy of ``source`` without the services in ``drop``; ``mutate(spec)`` may change it."""
    spec = copy.deepcopy(load(source))
    for name in drop:
        spec["services"].pop(name, None)
    used_configs = {ref["source"] if isinstance(ref, dict) else ref
                    for service in spec["services"].values() for ref in service.get("configs", [])}
    configs = spec.get("configs") or {}
    for name in list(configs):
        if name not in used_configs:
            del configs[name]
        elif "file" in configs[name]:
            configs[name]["file"] = str((source.parent / configs[name]["file"]).resolve())
    for service in spec["services"].values():  # depends_on a dropped service (compose) goes too
        if isinstance(service.get("depends_on"), dict):
            for name in drop:
                service["depends_on"].pop(name, None)
        elif isinstance(service.get("depends_on"), list):
            service["depends_on"] = [name for name in service["depends_on"] if name not in drop]
    if mutate is not None:
        mutate(spec)
    dest.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return spec


def root_propagation() -> str:
    """`shared`, `private`, ... of this machine's / (systemd makes it shared; some VMs do not)."""
    result = run(["findmnt", "-n", "-o", "PROPAGATION", "/"], check=False, timeout=30)
    return result.stdout.strip() or "unknown"


def adapt_to_host(spec: dict[str, Any]) -> list[str]:
    """The one change this machine forces: node-exporter's bind of the host's / asks for
    `propagation: rslave`, which the kernel refuses where / is a private mount ("not a shared or
    slave mount"); and Docker refuses `rprivate` for a source holding its data root. Without an
    explicit propagation Docker chooses itself and the bind starts (the exporter then may miss
    mounts made after it started). Returns what was changed."""
    if root_propagation() not in ("private", "unknown"):
        return []
    changed = []
    for name, service in spec["services"].items():
        for volume in service.get("volumes") or []:
            bind = volume.get("bind") if isinstance(volume, dict) else None
            if bind and bind.get("propagation") in ("rslave", "slave", "rshared", "shared"):
                del bind["propagation"]
                if not bind:
                    del volume["bind"]
                changed.append(f"{name}: {volume.get('source')} bound without `propagation` "
                               "(this machine's / is a private mount)")
    return changed


def database_url(password: str, database: str = "minitwit") -> str:
    """The app's DATABASE_URL for the stack's PostgreSQL: user minitwit on host db."""
    credentials = "minitwit:" + password
    return f"postgresql://{credentials}@db:5432/{database}"


@dataclass
class Secrets:
    """Fresh values for every external secret the stack names."""

    postgres_password: str = field(default_factory=lambda: secrets.token_hex(16))
    metrics_token: str = field(default_factory=lambda: secrets.token_hex(32))

    def values(self) -> dict[str, str]:
        return {
            "postgres_password": self.postgres_password,
            "database_url": database_url(self.postgres_password),
            "secret_key": secrets.token_hex(32),
            "simulator_password": SIMULATOR_PASSWORD,
            "metrics_token": self.metrics_token,
            "alert_webhook_url": "http://127.0.0.1:9/e2e-no-webhook",
            "grafana_admin_password": secrets.token_hex(16),
        }


class Swarm:
    """The one-node Swarm, the stack's secrets, labels and ops files; removes what it made."""

    def __init__(self, repo: Path, workdir: Path) -> None:
        self.repo = repo
        self.workdir = workdir
        self.created_swarm = False
        self.secret_names: list[str] = []
        self.ops_dir: Path | None = None
        self.ops_version = ""
        self.secrets = Secrets()

    def init(self) -> None:
        state = docker("info", "--format", "{{.Swarm.LocalNodeState}}")
        if state != "active":
            docker("swarm", "init", "--advertise-addr", "127.0.0.1")
            self.created_swarm = True
        node = docker("info", "--format", "{{.Swarm.NodeID}}")
        for label in ("minitwit.db=true", "minitwit.edge=true", "minitwit.ops=true"):
            docker("node", "update", "--label-add", label, node)

    def create_secrets(self, spec: dict[str, Any]) -> None:
        values = self.secrets.values()
        for key, secret in (spec.get("secrets") or {}).items():
            if not secret.get("external"):
                continue
            name = secret.get("name", key)
            docker("secret", "rm", name, check=False)
            docker("secret", "create", name, "-", input=values.get(key, secrets.token_hex(16)))
            self.secret_names.append(name)

    def install_ops(self) -> str:
        """Copies ops/ where the stack binds it from, under a version like CI's OPS_VERSION."""
        result = run(["git", "-C", str(self.repo), "rev-parse", "--short=12", "HEAD:ops"], check=False)
        self.ops_version = "e2e-" + (result.stdout.strip() or "worktree")
        self.ops_dir = OPS_ROOT / self.ops_version
        if self.ops_dir.exists():
            shutil.rmtree(self.ops_dir)
        shutil.copytree(self.repo / "ops", self.ops_dir)
        return self.ops_version

    def deploy(self, stack_file: Path, env: dict[str, str], name: str = STACK) -> None:
        docker("stack", "deploy", "--resolve-image", "never", "--prune", "-c", str(stack_file), name,
               env={**env, "OPS_VERSION": self.ops_version}, timeout=300)

    def remove(self, name: str = STACK, timeout: float = 180) -> None:
        docker("stack", "rm", name, check=False, timeout=120)

        def gone() -> bool:
            return not lines("ps", "-aq", "--filter", f"label=com.docker.stack.namespace={name}") and \
                not lines("network", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={name}")

        wait_for(f"stack {name} to be removed", gone, timeout)

    def cleanup(self, volumes: list[str]) -> None:
        for name in volumes:
            wait_for(f"volume {name} to be free", lambda n=name: docker("volume", "rm", n, check=False,
                                                                          timeout=60) is not None and
                     not lines("volume", "ls", "-q", "--filter", f"name=^{n}$"), 60)
        for name in self.secret_names:
            docker("secret", "rm", name, check=False)
        if self.ops_dir is not None:
            shutil.rmtree(self.ops_dir, ignore_errors=True)
        if self.created_swarm:
            docker("swarm", "leave", "--force", check=False)


# --- what runs -----------------------------------------------------------------------------------


current = {"stack": STACK}  # another name only while scenario 6's failure demonstration runs


def service(name: str) -> str:
    return f"{current['stack']}_{name}"


def replicas(full_name: str) -> tuple[int, int]:
    """(running, desired) as `docker service ls` shows them."""
    text = docker("service", "ls", "--filter", f"name={full_name}", "--format", "{{.Name}} {{.Replicas}}")
    for line in text.splitlines():
        name, counts = line.split(" ", 1)
        if name == full_name:
            running, desired = counts.split(" ", 1)[0].split("/")
            return int(running), int(desired)
    return 0, -1


def containers(full_name: str, all_states: bool = False) -> list[str]:
    return lines("ps", *(["-a"] if all_states else []), "-q", "--no-trunc",
                 "--filter", f"label=com.docker.swarm.service.name={full_name}")


def health(container: str) -> str:
    state = docker_json("inspect", "--format", "{{json .State}}", container)
    return (state.get("Health") or {}).get("Status", state.get("Status", "?"))


def healthy_containers(full_name: str) -> list[str]:
    return [c for c in containers(full_name) if health(c) == "healthy"]


# Services whose every replica must report healthy before the stack counts as up. Others (the
# backup's healthcheck first runs after 5 minutes) only have to run and not be unhealthy.
MUST_BE_HEALTHY = frozenset({"app", "db", "proxy"})


def converged_service(name: str, wanted: int) -> bool:
    states = [health(container) for container in containers(service(name))]
    if name in MUST_BE_HEALTHY:
        return sum(state in ("healthy", "running") for state in states) >= wanted
    return sum(state in ("healthy", "running", "starting") for state in states) >= wanted


def wait_converged(services: dict[str, int], timeout: float) -> float:
    """Waits until each service runs its replicas (healthy where that matters, see above)."""
    started = time.monotonic()
    wait_for("the stack to converge (" + ", ".join(f"{n} {w}" for n, w in services.items()) + ")",
             lambda: all(converged_service(name, wanted) for name, wanted in services.items()),
             timeout, interval=3)
    return time.monotonic() - started


def is_one_shot(service: dict[str, Any]) -> bool:
    """A job that runs to completion once: Swarm restarts it only on failure."""
    policy = (service.get("deploy") or {}).get("restart_policy") or {}
    return policy.get("condition") in ("on-failure", "none")


def completed(full_name: str) -> bool:
    tasks = lines("service", "ps", full_name, "--format", "{{.CurrentState}}")
    return any(task.startswith("Complete") for task in tasks)


def task_restarts(full_name: str) -> int:
    """Tasks beyond the desired count that Swarm started for the service (failed, restarted)."""
    tasks = lines("service", "ps", full_name, "--format", "{{.DesiredState}} {{.CurrentState}}")
    return sum(1 for task in tasks if task.startswith("Shutdown") and ("Failed" in task or "Rejected" in task))


def service_logs(full_name: str, since: str | None = None) -> str:
    args = ["service", "logs", "--raw", "--no-task-ids"] + (["--since", since] if since else []) + [full_name]
    try:
        result = run(["docker", *args], check=False, timeout=60)
    except subprocess.TimeoutExpired:
        return ""
    return result.stdout + result.stderr


def psql(query: str, database: str = "minitwit") -> str:
    container = wait_for("the database container", lambda: (containers(service("db")) or [None])[0], 60)
    return docker("exec", container, "psql", "-h", "/var/run/postgresql", "-U", "minitwit", "-d", database,
                  "-tA", "-F", " ", "-c", query, timeout=60)


COUNTS_SQL = ("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM messages), "
              "(SELECT count(*) FROM follows), coalesce((SELECT max(action_id) FROM simulator_latest), -1)")


def counts(database: str = "minitwit") -> dict[str, int]:
    values = [int(x) for x in psql(COUNTS_SQL, database).split()]
    return dict(zip(("users", "messages", "follows", "latest"), values, strict=True))


def ensure_no_stack() -> None:
    if lines("stack", "ls", "--format", "{{.Name}}").count(STACK):
        raise E2EError(f"a stack named {STACK} runs already on this Swarm; remove it first "
                       "(`docker stack rm minitwit`) - this suite will not touch it")


def env_with(**values: str) -> dict[str, str]:
    return {**os.environ, **values}
