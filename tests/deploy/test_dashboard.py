"""The Grafana dashboard is a valid dashboard (the Grafana Foundation SDK's model, strict round trip) and
every panel's and variable's query parses as PromQL (promtool, Prometheus's own parser)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.promql import DASHBOARD, Query, dashboard_queries, grafana_to_promql
from tests.deploy.tools import ROOT, output, run, system_tool, venv_tool

VALIDATOR = ROOT / "tests" / "deploy" / "validate_dashboard.py"


def validate(path: Path) -> tuple[int, list[dict[str, Any]], str]:
    done = run([venv_tool("python"), VALIDATOR, path], timeout=60)
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return done.returncode, records, output(done)


def check_promql(queries: list[Query], tmp_path: Path) -> tuple[int, str]:
    """promtool parses each query as the expression of a recording rule."""
    rules = [
        {"record": f"dashboard:query_{i}", "expr": grafana_to_promql(q.expr)} for i, q in enumerate(queries)
    ]
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = run([system_tool("promtool"), "check", "rules", path])
    return done.returncode, output(done)


def test_the_dashboard_is_a_valid_grafana_dashboard() -> None:
    code, records, log = validate(DASHBOARD)
    assert code == 0 and [r["ok"] for r in records] == [True], log
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert records[0]["panels"] == len([p for p in panels if p["type"] != "row"]), log


def test_the_validator_catches_mistakes(tmp_path: Path) -> None:
    """Negative controls: a misspelled field, an unknown panel type and a broken shape are each refused."""
    dashboard = json.loads(DASHBOARD.read_text())
    first = next(p for p in dashboard["panels"] if p["type"] != "row")
    mistakes = {
        "misspelled": lambda d: d["panels"][d["panels"].index(first)].update(gridPoss=first["gridPos"]),
        "unknown-type": lambda d: d["panels"][d["panels"].index(first)].update(type="no-such-panel"),
        "bad-shape": lambda d: d.update(templating=[]),
    }
    for name, spoil in mistakes.items():
        broken = json.loads(json.dumps(dashboard))
        spoil(broken)
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(broken))
        code, records, log = validate(path)
        assert code == 1 and records and not records[0]["ok"], f"{name} passed:\n{log}"


def test_every_dashboard_query_parses_as_promql(tmp_path: Path) -> None:
    queries = dashboard_queries()
    panels = json.loads(DASHBOARD.read_text())["panels"]
    targets = sum(len(p.get("targets", [])) for p in panels)
    assert len(queries) >= targets > 0
    code, log = check_promql(queries, tmp_path)
    assert code == 0 and f"{len(queries)} rules found" in log, log


def test_promtool_refuses_a_broken_query(tmp_path: Path) -> None:
    code, log = check_promql([Query("broken", "sum(rate(bertserve_requests_total[5m])")], tmp_path)
    assert code != 0 and "parse error" in log, log
