"""The PromQL of the deployment kit (dashboard, alert rules, adapter rules) and what the server exports."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml
from prometheus_client import Counter, Gauge, Histogram

from app.metrics import Metrics
from tests.deploy.tools import ROOT

DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "bertserve.json"
ALERT_RULES = ROOT / "deploy" / "prometheus" / "rules" / "bertserve.rules.yml"
ADAPTER_RULES = ROOT / "deploy" / "prometheus-adapter" / "rules.yaml"

# Labels Prometheus attaches to every scraped series (static config, or the Prometheus Operator).
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "container", "endpoint"}

_SELECTOR = re.compile(r"\b(bertserve_[a-zA-Z0-9_]+)\b\s*(\{[^}]*\})?")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}


@dataclass(frozen=True)
class Query:
    source: str  # where it was found, for the failure message
    expr: str


def exported_series() -> dict[str, set[str]]:
    """Every series name the server exports, with the label names it carries (`le` on buckets)."""
    metrics = Metrics()
    series: dict[str, set[str]] = {}
    for metric in vars(metrics).values():
        if not isinstance(metric, Counter | Gauge | Histogram):
            continue
        family = next(iter(metric.describe()))
        labels = set(metric._labelnames)  # prometheus_client keeps no public accessor for them
        suffixes = _SUFFIXES.get(family.type, ("",))
        for suffix in suffixes:
            series[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return series


def dashboard_queries() -> list[Query]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            queries.append(Query(f"dashboard panel {panel['title']!r}", target["expr"]))
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            queries.append(Query(f"dashboard variable {variable['name']!r}", query["query"]))
    return queries


def alert_queries() -> list[Query]:
    groups = yaml.safe_load(ALERT_RULES.read_text())["groups"]
    return [
        Query(f"rule {rule.get('alert') or rule.get('record')!r}", rule["expr"])
        for group in groups
        for rule in group["rules"]
    ]


def adapter_queries() -> list[Query]:
    """The adapter's series queries, and its metrics queries with the series and a pod filled in."""
    queries = []
    for rule in yaml.safe_load(ADAPTER_RULES.read_text())["rules"]:
        queries.append(Query("adapter seriesQuery", rule["seriesQuery"]))
        series = rule["seriesQuery"].split("{")[0].strip()
        queries.append(
            Query(f"adapter metricsQuery of {series}", fill_adapter_template(rule["metricsQuery"], series))
        )
    return queries


def fill_adapter_template(template: str, series: str) -> str:
    return (
        template.replace("<<.Series>>", series)
        .replace("<<.LabelMatchers>>", 'namespace="bertserve",pod=~"bertserve-.*"')
        .replace("<<.GroupBy>>", "pod")
    )


def grafana_to_promql(expr: str) -> str:
    """A dashboard expression as Prometheus gets it: variables substituted, label_values() unwrapped."""
    expr = expr.replace("$__rate_interval", "1m").replace("$__interval", "15s").replace("$model", ".*")
    values = re.fullmatch(r"\s*label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\)\s*", expr)
    return values.group(1) if values else expr


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(series name, label names matched on it) for each bertserve_* selector."""
    return [(name, set(_MATCHER.findall(braces or ""))) for name, braces in _SELECTOR.findall(expr)]


def groupings(expr: str) -> set[str]:
    """Label names of every by (...) / without (...) clause."""
    return {
        label.strip() for clause in _GROUPING.findall(expr) for label in clause.split(",") if label.strip()
    }
