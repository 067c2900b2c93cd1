"""Prometheus config and alert rules: promtool's checks and unit tests, then a real Prometheus server
scraping a real bertserve with the project's scrape config and evaluating the project's rules."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from tests.deploy.promql import (
    adapter_queries,
    alert_queries,
    dashboard_queries,
    exported_series,
    grafana_to_promql,
)
from tests.deploy.tools import ROOT, output, run, system_tool

CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
RULES = ROOT / "deploy" / "prometheus" / "rules" / "bertserve.rules.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "tests" / "bertserve.rules.test.yml"
ALERTS = [q.source.removeprefix("rule ").strip("'") for q in alert_queries()]
# What a ready server exports before any request.
SERIES_AT_START = {
    "bertserve_ready",
    "bertserve_inflight_requests",
    "bertserve_model_ready",
    "bertserve_model_info",
}

T = TypeVar("T")


# --- promtool --------------------------------------------------------------------------------------


def test_promtool_check_config() -> None:
    done = run([system_tool("promtool"), "check", "config", CONFIG])
    assert done.returncode == 0, output(done)
    assert "1 rule files found" in done.stdout, output(done)


def test_promtool_check_rules() -> None:
    done = run([system_tool("promtool"), "check", "rules", RULES])
    assert done.returncode == 0, output(done)
    assert f"{len(ALERTS)} rules found" in done.stdout, output(done)


def test_promtool_unit_tests_cover_every_alert() -> None:
    done = run([system_tool("promtool"), "test", "rules", RULE_TESTS])
    assert done.returncode == 0, output(done)
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert tested == set(ALERTS), f"alerts without a firing unit test: {set(ALERTS) - tested}"


# --- a real Prometheus on a real server ------------------------------------------------------------


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def api(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def eventually(check: Callable[[], T | None], timeout: float, what: str, log: Callable[[], str]) -> T:
    """Poll `check` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what}\n--- prometheus log\n{log()}"
            )
        time.sleep(0.25)


def scrape_config_for(server_url: str, prometheus_port: int) -> dict[str, Any]:
    """The project's config, pointed at the server under test; 1s intervals to keep the test quick."""
    config: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(CONFIG.parent / pattern) for pattern in config["rule_files"]]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert len(jobs["bertserve"]["static_configs"]) == 1
    jobs["bertserve"]["static_configs"][0]["targets"] = [urlsplit(server_url).netloc]
    jobs["prometheus"]["static_configs"][0]["targets"] = [f"127.0.0.1:{prometheus_port}"]
    return config


@pytest.fixture(scope="module")
def server_url(live_server: Any) -> str:
    """The base URL of the real server (the fixture yields a URL or an object with `.url`)."""
    url = live_server if isinstance(live_server, str) else live_server.url
    assert httpx.get(f"{url}/health/live", timeout=5).status_code == 200
    return str(url)


@pytest.fixture(scope="module")
def prometheus(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    binary = system_tool("prometheus")
    work = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    config = work / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config_for(server_url, port)))
    log_path = work / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(binary),
                f"--config.file={config}",
                f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    prom = Prometheus(f"http://127.0.0.1:{port}", process, log_path)

    def ready() -> bool:
        assert process.poll() is None, f"prometheus exited with {process.returncode}:\n{prom.log()}"
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{prom.url}/-/ready", timeout=2).status_code == 200
        return False

    try:
        eventually(ready, 30, "Prometheus to be ready", prom.log)
        yield prom
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_server_is_scraped(prometheus: Prometheus) -> None:
    def up() -> list[dict[str, Any]]:
        return [r for r in prometheus.query('up{job="bertserve"}') if r["value"][1] == "1"]

    eventually(up, 20, 'up{job="bertserve"} == 1', prometheus.log)


def test_the_series_arrive(prometheus: Prometheus) -> None:
    def names() -> set[str]:
        found = {name for name in prometheus.api("label/__name__/values") if name.startswith("bertserve_")}
        return found if found >= SERIES_AT_START else set()

    arrived = eventually(names, 20, f"the series {sorted(SERIES_AT_START)}", prometheus.log)
    assert arrived <= set(exported_series()), "the server exports series app.metrics does not declare"
    ready = eventually(
        lambda: prometheus.query('bertserve_ready{job="bertserve"} == 1'),
        20,
        "bertserve_ready 1",
        prometheus.log,
    )
    assert len(ready) == 1
    info = prometheus.query("bertserve_model_info")
    assert info, "no model_info series"
    for series in info:
        labels = series["metric"]
        assert labels["provider"].endswith("ExecutionProvider"), labels
        assert labels["precision"] in {"fp32", "fp16", "int8"}, labels
        assert labels["task"] in {"classify", "pair", "qa", "ner"}, labels
    models = {s["metric"]["model"] for s in prometheus.query("bertserve_model_ready == 1")}
    assert models == {s["metric"]["model"] for s in info}


def test_request_series_arrive_after_traffic(prometheus: Prometheus, server_url: str) -> None:
    listing = httpx.get(f"{server_url}/v1/models", timeout=10).json()["models"]
    models = listing if isinstance(listing, list) else [{"name": k, **v} for k, v in listing.items()]
    sequence_tasks = [m for m in models if m.get("task") in {"classify", "ner"}]
    assert sequence_tasks, f"the live server serves no classify or ner model: {models}"
    for model in sequence_tasks:
        for _ in range(3):
            httpx.post(
                f"{server_url}/{model['task']}", json={"inputs": "Paris is lovely in the spring."}, timeout=30
            )
    tasks = {m["task"] for m in sequence_tasks}

    def arrived() -> set[str]:
        found = {s["metric"]["task"] for s in prometheus.query("bertserve_requests_total")}
        histogram = prometheus.query("bertserve_request_duration_seconds_count")
        return found if tasks <= found and histogram else set()

    eventually(arrived, 20, f"bertserve_requests_total for {sorted(tasks)}", prometheus.log)
    ok = prometheus.query('sum by (task) (bertserve_requests_total{code="200"})')
    assert {s["metric"]["task"] for s in ok} == tasks, "the requests did not succeed"


def test_every_alert_rule_evaluates(prometheus: Prometheus) -> None:
    def evaluated() -> list[dict[str, Any]]:
        rules = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
        done = [r for r in rules if not r.get("lastEvaluation", "").startswith("0001-")]
        return rules if rules and len(done) == len(rules) else []

    rules = eventually(evaluated, 20, "every rule to be evaluated", prometheus.log)
    assert sorted(r["name"] for r in rules) == sorted(ALERTS)
    for rule in rules:
        assert rule["type"] == "alerting"
        assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"


def test_no_alert_on_a_healthy_server(prometheus: Prometheus) -> None:
    active = [a for a in prometheus.api("alerts")["alerts"] if a["state"] in {"pending", "firing"}]
    assert active == [], active


def test_dashboard_and_adapter_queries_run(prometheus: Prometheus) -> None:
    """Every dashboard and adapter query is valid PromQL that Prometheus evaluates against real series."""
    for query in [*dashboard_queries(), *adapter_queries()]:
        prometheus.query(grafana_to_promql(query.expr))
    table = prometheus.query("count by (model, task, precision, provider) (bertserve_model_info)")
    assert table, "the dashboard's provider/precision table would be empty"
    assert prometheus.query("sum(bertserve_ready)")[0]["value"][1] == "1"
