"""The Kustomize overlays render, every object validates against its schema, and the pieces fit together."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.settings import Settings
from tests.deploy.conftest import OVERLAYS, Rendered
from tests.deploy.tools import ROOT, output, run, venv_tool

# The oldest Kubernetes the manifests support, and the newest kubernetes-validate knows.
K8S_VERSIONS = ("1.30.0", "1.37.0")
VALIDATOR = ROOT / "tests" / "deploy" / "validate_manifests.py"
ADAPTER_RULES = ROOT / "deploy" / "prometheus-adapter" / "rules.yaml"
ADAPTER_VALUES = ROOT / "deploy" / "prometheus-adapter" / "values.yaml"
ALERT_RULES = ROOT / "deploy" / "prometheus" / "rules" / "bertserve.rules.yml"


def validate(paths: list[Path]) -> tuple[int, list[dict[str, Any]], str]:
    python = venv_tool("python")
    versions = [arg for v in K8S_VERSIONS for arg in ("--k8s-version", v)]
    done = run([python, VALIDATOR, *versions, *paths], timeout=120)
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return done.returncode, records, output(done)


def container(rendered: Rendered) -> dict[str, Any]:
    containers = rendered.one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["bertserve"]
    return dict(containers[0])


def config(rendered: Rendered) -> dict[str, str]:
    return dict(rendered.one("ConfigMap")["data"])


# --- rendering and schemas -------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_every_kind(rendered: dict[str, Rendered], overlay: str) -> None:
    kinds = rendered[overlay].kinds()
    assert kinds == {
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ServiceMonitor",
        "PrometheusRule",
    }
    namespaced = [o for o in rendered[overlay].objects if o["kind"] != "Namespace"]
    assert {o["metadata"].get("namespace") for o in namespaced} == {"bertserve"}


def test_every_object_validates_against_its_schema(rendered: dict[str, Rendered]) -> None:
    code, records, text = validate([r.path for r in rendered.values()])
    assert code == 0, text
    per_overlay = {r.overlay: len(r.objects) for r in rendered.values()}
    crds = sum(1 for r in records if r["schema"].startswith("crd:"))
    builtin = sum(1 for r in records if r["schema"].startswith("kubernetes-"))
    assert crds == 2 * len(OVERLAYS)  # ServiceMonitor and PrometheusRule per overlay
    assert builtin == (sum(per_overlay.values()) - crds) * len(K8S_VERSIONS)
    assert all(r["error"] is None for r in records), text


def test_the_validator_rejects_broken_objects(tmp_path: Path, rendered: dict[str, Rendered]) -> None:
    """Negative control: a misspelled field fails, in a built-in kind and in a CRD alike."""
    objects = {o["kind"]: o for o in rendered["gpu"].objects}
    deployment = json.loads(json.dumps(objects["Deployment"]))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {"path": "/"}
    monitor = json.loads(json.dumps(objects["ServiceMonitor"]))
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    rule = json.loads(json.dumps(objects["PrometheusRule"]))
    rule["spec"]["groups"][0]["rules"][0]["for"] = 120  # a number, not a duration string
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump_all([deployment, monitor, rule]))
    code, records, text = validate([broken])
    assert code == 1, text
    errors = {r["kind"]: r["error"] for r in records if r["error"]}
    assert set(errors) == {"Deployment", "ServiceMonitor", "PrometheusRule"}, text
    assert "httpGett" in errors["Deployment"], text
    assert "intervall" in errors["ServiceMonitor"], text
    assert "for" in errors["PrometheusRule"], text


# --- the Deployment --------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configmap_holds_only_real_settings(
    rendered: dict[str, Rendered], overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = config(rendered[overlay])
    fields = set(Settings.model_fields)
    for key in data:
        assert key.startswith("BERTSERVE_"), key
        assert key.removeprefix("BERTSERVE_").split("__")[0].lower() in fields, f"{key} is no setting"
    for key in list(os.environ):
        if key.startswith("BERTSERVE_"):
            monkeypatch.delenv(key)
    for key, value in data.items():
        monkeypatch.setenv(key, value)
    settings = Settings()  # parses every value as the server would
    assert str(settings.model_dir) == "/models"
    assert settings.port == 8000
    assert settings.device == {"gpu": "cuda", "cpu": "cpu"}[overlay]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_use_the_health_endpoints(rendered: dict[str, Rendered], overlay: str) -> None:
    c = container(rendered[overlay])
    port = int(config(rendered[overlay])["BERTSERVE_PORT"])
    assert c["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert c["startupProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120, "slow starts must not be killed"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_grace_period_outlasts_prestop_and_drain(rendered: dict[str, Rendered], overlay: str) -> None:
    pod = rendered[overlay].one("Deployment")["spec"]["template"]["spec"]
    c = container(rendered[overlay])
    command = c["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = float(command[1])
    drain = float(config(rendered[overlay]).get("BERTSERVE_DRAIN_TIMEOUT_S", Settings().drain_timeout_s))
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + drain + 10


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pod_is_locked_down(rendered: dict[str, Rendered], overlay: str) -> None:
    pod = rendered[overlay].one("Deployment")["spec"]["template"]["spec"]
    c = container(rendered[overlay])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] >= 10000
    assert pod["automountServiceAccountToken"] is False
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]], "/tmp must be a writable emptyDir"
    ns = rendered[overlay].one("Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_gpu_overlay_requests_a_gpu_and_cpu_overlay_none(rendered: dict[str, Rendered]) -> None:
    gpu = container(rendered["gpu"])["resources"]
    assert gpu["limits"]["nvidia.com/gpu"] == "1"
    assert gpu["requests"]["nvidia.com/gpu"] == "1"
    assert container(rendered["gpu"])["image"].endswith("-gpu")
    cpu = container(rendered["cpu"])["resources"]
    assert "nvidia.com/gpu" not in cpu["limits"] and "nvidia.com/gpu" not in cpu["requests"]
    assert container(rendered["cpu"])["image"].endswith("-cpu")
    for overlay in OVERLAYS:
        resources = container(rendered[overlay])["resources"]
        for key in ("cpu", "memory"):
            assert key in resources["requests"] and key in resources["limits"], (overlay, key)
        # Guaranteed CPU (requests = limits) and ONNX Runtime sized to it.
        assert resources["requests"]["cpu"] == resources["limits"]["cpu"]
        threads = config(rendered[overlay]).get("BERTSERVE_INTRA_OP_THREADS")
        assert threads == resources["limits"]["cpu"], overlay


# --- Service, ServiceMonitor, PDB, NetworkPolicy ---------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_selectors_find_the_pods(rendered: dict[str, Rendered], overlay: str) -> None:
    r = rendered[overlay]
    pod_labels = r.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    service = r.one("Service")

    def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
        return bool(selector) and all(labels.get(k) == v for k, v in selector.items())

    assert matches(r.one("Deployment")["spec"]["selector"]["matchLabels"], pod_labels)
    assert matches(service["spec"]["selector"], pod_labels)
    assert matches(r.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"], pod_labels)
    assert matches(r.one("NetworkPolicy")["spec"]["podSelector"]["matchLabels"], pod_labels)
    monitor = r.one("ServiceMonitor")
    assert matches(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    service_ports = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in service_ports
        assert endpoint["path"] == "/metrics"
    # The alert rules select job="bertserve": the operator names the job after the Service.
    assert service["metadata"]["name"] == "bertserve" and "jobLabel" not in monitor["spec"]
    ingress_ports = [p["port"] for rule in r.one("NetworkPolicy")["spec"]["ingress"] for p in rule["ports"]]
    assert ingress_ports == ["http"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budget_leaves_room_to_drain(rendered: dict[str, Rendered], overlay: str) -> None:
    pdb = rendered[overlay].one("PodDisruptionBudget")["spec"]
    hpa = rendered[overlay].one("HorizontalPodAutoscaler")["spec"]
    assert pdb["minAvailable"] < hpa["minReplicas"], "a drain must be able to evict a pod"
    assert "replicas" not in rendered[overlay].one("Deployment")["spec"], "the HPA owns the replica count"


def test_prometheus_rule_equals_the_alert_rules_file(rendered: dict[str, Rendered]) -> None:
    rules = yaml.safe_load(ALERT_RULES.read_text())
    for overlay in OVERLAYS:
        assert rendered[overlay].one("PrometheusRule")["spec"] == rules


# --- autoscaling through prometheus-adapter --------------------------------------------------------


def adapter_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = yaml.safe_load(ADAPTER_RULES.read_text())["rules"]
    return rules


def adapter_metric_names() -> dict[str, str]:
    """Custom-metrics API name -> the Prometheus series it comes from."""
    names = {}
    for rule in adapter_rules():
        series = re.match(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", rule["seriesQuery"])
        assert series, rule["seriesQuery"]
        matched = re.fullmatch(rule["name"]["matches"], series.group(1))
        assert matched, f"{rule['name']['matches']} does not match {series.group(1)}"
        exposed = (
            matched.expand(rule["name"]["as"].replace("${1}", r"\1"))
            if rule["name"].get("as")
            else series.group(1)
        )
        names[exposed] = series.group(1)
    return names


def test_adapter_rules_are_well_formed() -> None:
    for rule in adapter_rules():
        overrides = rule["resources"]["overrides"]
        assert overrides["namespace"] == {"resource": "namespace"}
        assert overrides["pod"] == {"resource": "pod"}
        assert 'namespace!=""' in rule["seriesQuery"] and 'pod!=""' in rule["seriesQuery"]
        for placeholder in ("<<.Series>>", "<<.LabelMatchers>>", "<<.GroupBy>>"):
            assert placeholder in rule["metricsQuery"]
    values = yaml.safe_load(ADAPTER_VALUES.read_text())
    assert values["rules"]["custom"] == adapter_rules(), (
        "values.yaml and rules.yaml must carry the same rules"
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_hpa_scales_on_metrics_the_adapter_serves(rendered: dict[str, Rendered], overlay: str) -> None:
    hpa = rendered[overlay].one("HorizontalPodAutoscaler")["spec"]
    deployment = rendered[overlay].one("Deployment")
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    served = adapter_metric_names()
    used = set()
    for metric in hpa["metrics"]:
        assert metric["type"] == "Pods"
        name = metric["pods"]["metric"]["name"]
        assert name in served, f"HPA metric {name} is not served by deploy/prometheus-adapter/rules.yaml"
        assert metric["pods"]["target"]["type"] == "AverageValue"
        assert float(metric["pods"]["target"]["averageValue"]) > 0
        used.add(name)
    assert used == {"bertserve_inflight_requests", "bertserve_queue_items"}
    assert 1 <= hpa["minReplicas"] < hpa["maxReplicas"]
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 60
