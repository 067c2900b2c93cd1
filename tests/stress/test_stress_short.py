"""`make stress` in short: every scenario against the real server and the demo heads, seconds each.

One run of `python -m tools.bench.stress --profile short`; each scenario's requirements are a test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.harness import ROOT

SCENARIOS = (
    "capacity",
    "soak",
    "overload",
    "disconnect_storm",
    "generated_requests",
    "sigterm",
    "faults",
    "hostile",
)


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    models = ROOT / "models"
    if not any(models.glob("*/manifest.json")):
        pytest.skip("no demo models in models/: `make models` builds them (make test does)")
    work = tmp_path_factory.mktemp("stress")
    out = work / "figures.json"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.bench.stress",
            "--profile",
            "short",
            "--work",
            str(work),
            "--json-out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    print(completed.stdout[-6000:])
    print(completed.stderr[-3000:], file=sys.stderr)
    assert out.is_file(), completed.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.read_text())
    return result


@pytest.mark.slow
@pytest.mark.timeout(900)  # the first test runs the whole short stress (the fixture), within its own limit
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_requirement_of_the_scenario_holds(figures: dict[str, Any], scenario: str) -> None:
    row = figures["scenarios"][scenario]
    failed = [name for name, held in row["checks"].items() if not held]
    assert not failed, f"{scenario}: {failed}\n{json.dumps(row, indent=1)}"
