"""Static security scan in the suite: ``bandit`` finds nothing of high severity in the project's code.

``manage.py check --deploy`` with the production profile runs in
exchange_site/tests/test_production_settings.py (at ``--fail-level DEBUG``,
stricter than WARNING: nothing reported at all, nothing silenced).
"""

from __future__ import annotations

import json
import subprocess
import sys

from django.conf import settings

# Not ours (virtualenv, npm packages), generated, or data.
EXCLUDED = (".venv", "node_modules", ".data", "staticfiles")


def test_bandit_reports_no_high_severity_issue():
    root = settings.BASE_DIR
    excluded = ",".join(str(root / name) for name in EXCLUDED)
    command = [sys.executable, "-m", "bandit", "--recursive", str(root), "--exclude", excluded]
    result = subprocess.run(
        [*command, "--severity-level", "high", "--format", "json", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(result.stdout)
    high = [f"{r['filename']}:{r['line_number']} {r['test_id']} {r['issue_text']}" for r in report["results"]]
    assert high == []
    assert report["errors"] == []
    assert result.returncode == 0, result.stderr
    # The scan really read the project (an exclusion gone wrong would scan nothing, or the virtualenv).
    scanned = [name for name in report["metrics"] if name != "_totals"]
    assert any(name.endswith("orders/services.py") for name in scanned)
    assert not any("/.venv/" in name or "/node_modules/" in name for name in scanned)
    assert report["metrics"]["_totals"]["loc"] > 10_000
