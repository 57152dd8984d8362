"""The documentation holds together: relative links and anchors resolve, every alert has a runbook
section, and docs/api.md describes exactly the API that /openapi.json describes."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from fixtures import REPO_ROOT

from minitwit.app import routes
from minitwit.openapi import DOCUMENT

DOCS = REPO_ROOT / "docs"
PAGES = [REPO_ROOT / "README.md", REPO_ROOT / "CHANGELOG.md", *sorted(DOCS.glob("*.md"))]
RUNBOOK = DOCS / "operating.md"
ALERT_RULE_FILES = sorted((REPO_ROOT / "ops" / "prometheus" / "rules").glob("*.yml"))

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`+[^`\n]*`+")
INLINE_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.MULTILINE)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")
API_HEADING = re.compile(r"^### (GET|POST|PUT|PATCH|DELETE) (/\S*)\s*$", re.MULTILINE)


def without_code(text: str) -> str:
    """The Markdown with fenced blocks and code spans removed: links inside them are examples."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped (not `-` or `_`),
    spaces to hyphens. Links are read as their text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a Markdown page offers: heading slugs (repeats get -1, -2, ...) and HTML ids."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for heading in HEADING.findall(text):
        slug = github_slug(heading)
        candidate, n = slug, 0
        while candidate in found:
            n += 1
            candidate = f"{slug}-{n}"
        found.add(candidate)
    return found | set(HTML_ANCHOR.findall(text))


def relative_links(path: Path) -> list[str]:
    text = without_code(path.read_text(encoding="utf-8"))
    return INLINE_LINK.findall(text) + REFERENCE_LINK.findall(text)


def broken_link(page: Path, target: str) -> str | None:
    """Why ``target`` (a link in ``page``) does not resolve, or None when it does."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None  # an external address: not this test's business
    destination = (page.parent / unquote(parts.path)).resolve() if parts.path else page
    if not destination.exists():
        return f"{page.relative_to(REPO_ROOT)}: {target}: no such file"
    if REPO_ROOT.resolve() not in (destination, *destination.parents):
        return f"{page.relative_to(REPO_ROOT)}: {target}: outside the repository"
    if parts.fragment and destination.suffix == ".md" and unquote(parts.fragment) not in anchors(destination):
        return f"{page.relative_to(REPO_ROOT)}: {target}: no heading with that anchor"
    return None


def test_the_pages_exist() -> None:
    expected = {"architecture", "deploying", "operating", "monitoring", "security", "performance",
                "development", "api"}
    assert expected <= {page.stem for page in DOCS.glob("*.md")}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    problems = [problem for target in relative_links(page) if (problem := broken_link(page, target))]
    assert problems == []


def test_the_link_check_catches_a_broken_file_and_anchor(tmp_path: Path) -> None:
    page = REPO_ROOT / "docs" / "api.md"
    assert broken_link(page, "nothing-here.md") is not None
    assert broken_link(page, "operating.md#no-such-section") is not None
    assert broken_link(page, "../README.md") is None
    assert broken_link(page, "https://example.org/x.md#y") is None


def test_github_slugs() -> None:
    assert github_slug("Backups and restore") == "backups-and-restore"
    assert github_slug("`minitwit restore`: when it refuses") == "minitwit-restore-when-it-refuses"
    assert github_slug("InstanceDown") == "instancedown"
    assert github_slug("Why Loki, not ELK?") == "why-loki-not-elk"
    assert github_slug("GET /msgs/{username}") == "get-msgsusername"


def alerts() -> list[tuple[str, dict]]:
    found = []
    for path in ALERT_RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8")).get("groups", []):
            found += [(f"{path.name}: {rule['alert']}", rule) for rule in group["rules"] if "alert" in rule]
    return found


def test_every_alert_links_to_its_runbook_section() -> None:
    sections = anchors(RUNBOOK)
    assert alerts(), "no alert rules found"
    problems = []
    for name, rule in alerts():
        url = rule.get("annotations", {}).get("runbook_url", "")
        parts = urlsplit(url)
        if not parts.path.endswith("docs/operating.md") or not parts.fragment:
            problems.append(f"{name}: runbook_url {url!r} does not name a section of docs/operating.md")
        elif parts.fragment not in sections:
            problems.append(f"{name}: docs/operating.md has no section #{parts.fragment}")
    assert problems == []


def openapi_operations() -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in DOCUMENT["paths"].items() for method in item}


def documented_api_operations() -> set[tuple[str, str]]:
    return set(API_HEADING.findall((DOCS / "api.md").read_text(encoding="utf-8")))


def test_api_page_documents_exactly_the_openapi_operations() -> None:
    documented, described = documented_api_operations(), openapi_operations()
    assert described - documented == set(), "in /openapi.json but not in docs/api.md"
    assert documented - described == set(), "in docs/api.md but not in /openapi.json"


def test_api_page_names_every_route_of_the_app() -> None:
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    public = [re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path) for route in routes]  # "{username:username}"
    missing = [path for path in public if not re.search(re.escape(path) + r"(?=[`\s]|$)", text)]
    assert missing == []


def release_notes(version: str, changelog: Path | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO_ROOT / ".ci" / "release-notes.py"), version]
    return subprocess.run(command + ([str(changelog)] if changelog else []), capture_output=True, text=True,
                          check=False)


def test_changelog_keeps_an_unreleased_section_and_one_for_the_current_version() -> None:
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "setup.cfg")
    major, minor, *_ = config["metadata"]["version"].split(".")
    headings = re.findall(r"^## \[([^\]]+)\]", (REPO_ROOT / "CHANGELOG.md").read_text(encoding="utf-8"), re.MULTILINE)
    assert headings[0] == "Unreleased"
    assert f"{major}.{minor}" in headings


def test_release_notes_come_from_the_changelog(tmp_path: Path) -> None:
    notes = release_notes("1.0.42")
    assert notes.returncode == 0, notes.stderr
    assert "## Latest changes" in notes.stdout and "## Version 1.0" in notes.stdout
    changelog = tmp_path / "CHANGELOG.md"
    changelog.write_text("# Changelog\n\n## [Unreleased]\n\n## [2.3.4] - 2027-01-01\n### Fixed\n- a bug\n\n"
                         "## [2.3] - 2026-12-01\n### Added\n- a thing\n", encoding="utf-8")
    exact = release_notes("2.3.4", changelog)
    assert exact.returncode == 0 and exact.stdout.strip() == "### Fixed\n- a bug"
    line = release_notes("2.3.9", changelog)
    assert line.returncode == 0 and line.stdout.strip() == "## Version 2.3\n\n### Added\n- a thing"
    assert release_notes("3.0.1", changelog).returncode == 1  # no notes: the release job stops
