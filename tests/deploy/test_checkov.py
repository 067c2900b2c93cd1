"""checkov finds nothing in the Dockerfile and the rendered overlays beyond deploy/checkov.yaml's skips."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import OVERLAYS, Rendered
from tests.deploy.tools import ROOT, output, run, venv_tool

CONFIG = ROOT / "deploy" / "checkov.yaml"
DOCKERFILE = ROOT / "Dockerfile"


@pytest.fixture(scope="module")
def checkov_report(rendered: dict[str, Rendered]) -> dict[str, dict[str, Any]]:
    """One checkov run over every target, by framework (dockerfile, kubernetes)."""
    checkov = venv_tool("checkov")
    files = [arg for path in [DOCKERFILE, *(r.path for r in rendered.values())] for arg in ("-f", path)]
    done = run([checkov, "--config-file", CONFIG, *files, "--output", "json"], timeout=300)
    # checkov exits 1 when a check fails; anything else, or no JSON, is a broken run.
    assert done.returncode in (0, 1), output(done)
    parsed = json.loads(done.stdout)
    reports = parsed if isinstance(parsed, list) else [parsed]
    return {report["check_type"]: report for report in reports}


def failures(report: dict[str, Any]) -> list[str]:
    return [
        f"{f['check_id']} {f['check_name']} ({f['resource']}, {f['file_path']}:{f['file_line_range']})"
        for f in report["results"]["failed_checks"]
    ]


@pytest.mark.parametrize("framework", ["dockerfile", "kubernetes"])
def test_no_failed_checks(checkov_report: dict[str, dict[str, Any]], framework: str) -> None:
    assert framework in checkov_report, f"checkov ran no {framework} checks: {list(checkov_report)}"
    report = checkov_report[framework]
    summary = report["summary"]
    assert summary["parsing_errors"] == 0, summary
    assert summary["passed"] > 50, summary  # the checks really ran
    assert failures(report) == []


def test_every_object_was_scanned(
    checkov_report: dict[str, dict[str, Any]], rendered: dict[str, Rendered]
) -> None:
    summary = checkov_report["kubernetes"]["summary"]
    assert summary["resource_count"] >= sum(len(rendered[o].objects) for o in OVERLAYS), summary
    # The workload's hardening checks ran on the Deployment of every overlay.
    hardened = {
        (c["file_path"].rsplit("/", 1)[-1], c["check_id"])
        for c in checkov_report["kubernetes"]["results"]["passed_checks"]
        if c["resource"].startswith("Deployment.")
    }
    for overlay in OVERLAYS:
        for check in ("CKV_K8S_22", "CKV_K8S_28", "CKV_K8S_8", "CKV_K8S_9", "CKV_K8S_40"):
            assert (f"{overlay}.yaml", check) in hardened, (overlay, check)


def test_skip_list_is_short_and_justified() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    skipped = config.get("skip-check", [])
    assert len(skipped) <= 3, skipped
    for check in skipped:
        line = next(line for line in CONFIG.read_text().splitlines() if re.match(rf"\s*-\s*{check}\b", line))
        justification = line.partition("#")[2].strip()
        assert len(justification.split()) >= 8, f"{check} needs a justification comment: {line!r}"
    assert config.get("skip-download") is True, "checkov must not call its vendor's platform"


def test_hadolint_passes_the_dockerfile() -> None:
    hadolint = venv_tool("hadolint")
    done = run([hadolint, "--no-color", DOCKERFILE], timeout=60)
    assert done.returncode == 0, output(done)
