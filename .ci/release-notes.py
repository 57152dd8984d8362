#!/usr/bin/env python3
"""Print the CHANGELOG.md section that a release's notes come from.

Usage: release-notes.py VERSION [CHANGELOG]. For 1.0.42 that is the section headed `## [1.0.42]`
when there is one. Otherwise, since every push to main is released as MAJOR.MINOR.RUN and the
changelog keeps one section per MAJOR.MINOR line: the `## [Unreleased]` section (changes on main
that this very release ships) followed by the `## [1.0]` section. Exits 1 when none of them has
any text, so a release never goes out without notes.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HEADING = re.compile(r"^## \[(?P<name>[^\]]+)\]")


def sections(text: str) -> dict[str, str]:
    """Each `## [name]` section's body, without its heading, stripped."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        match = HEADING.match(line)
        if match:
            current = found.setdefault(match["name"], [])
        elif line.startswith("## "):
            current = None
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines).strip() for name, lines in found.items()}


def notes_for(version: str, text: str) -> str | None:
    found = sections(text)
    if found.get(version):
        return found[version]
    minor_line = ".".join(version.split(".")[:2])
    parts = [f"## {title}\n\n{found[name]}" for name, title in
             (("Unreleased", "Latest changes"), (minor_line, f"Version {minor_line}"))
             if found.get(name)]
    return "\n\n".join(parts) or None


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    changelog = Path(argv[2] if len(argv) == 3 else Path(__file__).resolve().parents[1] / "CHANGELOG.md")
    notes = notes_for(argv[1], changelog.read_text(encoding="utf-8"))
    if notes is None:
        print(f"{changelog}: no section [{argv[1]}], [Unreleased] nor one for its MAJOR.MINOR line", file=sys.stderr)
        return 1
    print(notes)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
