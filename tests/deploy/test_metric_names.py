"""Every series and label that the dashboard, the alert rules and the adapter rules query is one the server
exports (app.metrics.Metrics): a renamed metric breaks this test, not a dashboard in production."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.deploy.promql import (
    DASHBOARD,
    TARGET_LABELS,
    Query,
    adapter_queries,
    alert_queries,
    dashboard_queries,
    exported_series,
    groupings,
    selectors,
)
from tests.deploy.tools import ROOT

ALL_QUERIES = [*dashboard_queries(), *alert_queries(), *adapter_queries()]


def test_the_exported_names_follow_prometheus_client() -> None:
    series = exported_series()
    assert "bertserve_requests_total" in series and "bertserve_requests" not in series
    assert {"bertserve_request_duration_seconds_bucket", "bertserve_request_duration_seconds_count"} <= set(
        series
    )
    assert series["bertserve_request_duration_seconds_bucket"] == {"model", "task", "le"}
    assert series["bertserve_inflight_requests"] == set()


@pytest.mark.parametrize("query", ALL_QUERIES, ids=lambda q: q.source)
def test_query_uses_exported_series_and_labels(query: Query) -> None:
    exported = exported_series()
    found = selectors(query.expr)
    assert found or query.expr.startswith(("up", "absent(up")), (
        f"{query.source}: no bertserve_* series in {query.expr}"
    )
    available = set(TARGET_LABELS)
    for name, labels in found:
        assert name in exported, f"{query.source}: {name} is not exported by app.metrics.Metrics"
        unknown = labels - exported[name] - TARGET_LABELS
        assert not unknown, f"{query.source}: {name} has no label {unknown}"
        available |= exported[name]
    missing = groupings(query.expr) - available
    assert not missing, f"{query.source}: grouping by labels that no queried series has: {missing}"


def test_every_metric_is_on_the_dashboard() -> None:
    """The dashboard covers each metric family the server exports."""
    used = {name for q in dashboard_queries() for name, _ in selectors(q.expr)}
    families = {name.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count") for name in used}
    exported = {
        name.removesuffix("_total")
        for name in exported_series()
        if not name.endswith(("_created", "_bucket", "_sum", "_count"))
    }
    assert exported - {f.removesuffix("_total") for f in families} == set()


def test_alert_rules_cover_the_required_incidents() -> None:
    rules = {q.source: q.expr for q in alert_queries()}
    expressions = " ".join(rules.values())
    assert 'up{job="bertserve"} == 0' in expressions, "server down"
    assert 'code=~"5.."' in expressions, "error ratio"
    assert (
        "histogram_quantile(0.99" in expressions
        and "bertserve_request_duration_seconds_bucket" in expressions
    )
    assert "bertserve_rejected_total" in expressions and "bertserve_queue_wait_seconds_bucket" in expressions
    assert "bertserve_model_ready == 0" in expressions


def test_dashboard_panels_cover_the_brief() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    titles = " | ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in (
        "request rate",
        "error ratio",
        "p50 / p95 / p99",
        "queue wait",
        "batch size",
        "padding ratio",
        "in-flight",
        "provider and precision",
    ):
        assert topic in titles, topic
    table = next(p for p in dashboard["panels"] if p["type"] == "table")
    assert "bertserve_model_info" in table["targets"][0]["expr"]
    assert "precision, provider" in table["targets"][0]["expr"]


def test_dashboard_is_provisioned_with_its_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "bertserve"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, panel["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert [(d["type"], d["url"]) for d in datasources] == [("prometheus", "http://prometheus:9090")]
    providers = yaml.safe_load((provisioning / "dashboards" / "bertserve.yml").read_text())["providers"]
    assert providers[0]["options"]["path"] == "/var/lib/grafana/dashboards"
