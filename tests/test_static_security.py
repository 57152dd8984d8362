"""Static security checks: bandit over src/ with the project's reviewed configuration."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fixtures import REPO_ROOT

BANDIT = Path(sys.executable).with_name("bandit")


def bandit(*targets: str) -> dict:
    """bandit's JSON report, configured by setup.cfg's [bandit] section (targets: src)."""
    result = subprocess.run([str(BANDIT), "-q", "--ini", "setup.cfg", "-f", "json", *targets],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.stdout, result.stderr
    return json.loads(result.stdout)


def test_bandit_finds_nothing_unreviewed_in_src() -> None:
    report = bandit()
    findings = [f"{r['filename']}:{r['line_number']} {r['test_id']} {r['issue_text']}" for r in report["results"]]
    assert findings == [], "\n".join(findings)
    assert report["errors"] == []
    assert report["metrics"]["_totals"]["loc"] > 1000, "bandit did not scan src/"


def test_bandit_would_catch_a_finding(tmp_path: Path) -> None:
    """The same configuration still reports a real problem (a shell command built from input)."""
    (tmp_path / "bad.py").write_text("import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n")
    assert "B602" in {result["test_id"] for result in bandit(str(tmp_path))["results"]}
