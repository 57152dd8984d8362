"""Which build a process runs: the version and git revision that an operator reads in /health,
the page footer, the ``X-MiniTwit-Version`` header and the ``minitwit_build_info`` metric."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from minitwit import __version__

UNKNOWN_REVISION = "unknown"
# Both values travel in a response header and a metric label: keep them short and plain.
SAFE_VALUE = re.compile(r"[A-Za-z0-9._+-]{1,64}")


@dataclass(frozen=True)
class BuildInfo:
    version: str
    revision: str


def build_info(environ: Mapping[str, str] = os.environ) -> BuildInfo:
    """The image's build arguments (``MINITWIT_VERSION``, ``MINITWIT_REVISION``, set by the
    Dockerfile from VERSION and REVISION); outside an image, the package version."""
    version = environ.get("MINITWIT_VERSION", "").strip()
    revision = environ.get("MINITWIT_REVISION", "").strip()
    return BuildInfo(
        version=version if SAFE_VALUE.fullmatch(version) else __version__,
        revision=revision if SAFE_VALUE.fullmatch(revision) else UNKNOWN_REVISION,
    )
