"""docker-compose.yml (and its CPU override) validate with Docker Compose v2 and wire the stack together."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.settings import Settings
from app.tracing import Tracing
from tests.deploy.tools import ROOT, output, run, venv_tool

BASE = ROOT / "docker-compose.yml"
CPU = ROOT / "docker-compose.cpu.yml"


def compose_config(*files: Path, profile: str | None = None) -> dict[str, Any]:
    """`docker-compose config` (Compose v2 validates the file against the Compose spec; no engine needed)."""
    compose = venv_tool("docker-compose")
    args: list[str | Path] = [compose, "--project-directory", ROOT]
    for path in files:
        args += ["-f", path]
    if profile is not None:
        args += ["--profile", profile]
    done = run([*args, "config", "--format", "json"], timeout=60)
    assert done.returncode == 0, output(done)
    config: dict[str, Any] = json.loads(done.stdout)
    return config


@pytest.fixture(scope="module")
def gpu_stack() -> dict[str, Any]:
    return compose_config(BASE)


@pytest.fixture(scope="module")
def cpu_stack() -> dict[str, Any]:
    return compose_config(BASE, CPU)


def test_quiet_validation_passes() -> None:
    compose = venv_tool("docker-compose")
    for files in ([BASE], [BASE, CPU]):
        args = [a for f in files for a in ("-f", f)]
        done = run([compose, "--project-directory", ROOT, *args, "config", "--quiet"], timeout=60)
        assert done.returncode == 0, output(done)


def test_validation_catches_mistakes(tmp_path: Path) -> None:
    """Negative control: Compose rejects an unknown service key."""
    broken = tmp_path / "broken.yml"
    broken.write_text(BASE.read_text().replace("    stop_grace_period: 35s", "    stop_grace_periodd: 35s"))
    compose = venv_tool("docker-compose")
    done = run([compose, "--project-directory", ROOT, "-f", broken, "config", "--quiet"], timeout=60)
    assert done.returncode != 0 and "stop_grace_periodd" in done.stderr, output(done)


def test_services(gpu_stack: dict[str, Any]) -> None:
    assert set(gpu_stack["services"]) == {"bertserve", "prometheus", "grafana"}


def test_gpu_is_reserved_and_the_cpu_override_drops_it(
    gpu_stack: dict[str, Any], cpu_stack: dict[str, Any]
) -> None:
    devices = gpu_stack["services"]["bertserve"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert gpu_stack["services"]["bertserve"]["build"]["args"]["RUNTIME"] == "gpu"
    cpu = cpu_stack["services"]["bertserve"]
    assert not cpu.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices")
    assert cpu["build"]["args"]["RUNTIME"] == "cpu"
    assert cpu["environment"]["BERTSERVE_DEVICE"] == "cpu"
    assert cpu["image"] != gpu_stack["services"]["bertserve"]["image"]


@pytest.mark.parametrize("stack_name", ["gpu_stack", "cpu_stack"])
def test_start_order_is_health_gated(request: pytest.FixtureRequest, stack_name: str) -> None:
    services = request.getfixturevalue(stack_name)["services"]
    assert services["prometheus"]["depends_on"]["bertserve"]["condition"] == "service_healthy"
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    for name in ("bertserve", "prometheus"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    assert any("/health/ready" in word for word in services["bertserve"]["healthcheck"]["test"])


def test_server_container_is_hardened_and_drains(
    gpu_stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = gpu_stack["services"]["bertserve"]
    assert server["read_only"] is True
    assert any(t.startswith("/tmp") for t in server["tmpfs"])
    assert server["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in server["security_opt"]
    env = server["environment"]
    for key, value in env.items():
        assert key.startswith(("BERTSERVE_", "OTEL_"))
        if key.startswith("BERTSERVE_"):
            monkeypatch.setenv(key, value)
    settings = Settings()  # every variable is a real setting with a valid value
    grace = server["stop_grace_period"]
    assert grace.endswith("s") and float(grace[:-1]) > settings.drain_timeout_s
    assert [p["target"] for p in server["ports"]] == [8000]


def test_monitoring_mounts_exist(gpu_stack: dict[str, Any]) -> None:
    for name in ("prometheus", "grafana"):
        for volume in gpu_stack["services"][name]["volumes"]:
            if volume["type"] == "bind":
                assert Path(volume["source"]).exists(), volume["source"]
                assert volume.get("read_only") is True, volume
    prometheus_mounts = {v["target"]: v.get("source") for v in gpu_stack["services"]["prometheus"]["volumes"]}
    assert prometheus_mounts["/etc/prometheus/prometheus.yml"] == str(
        ROOT / "deploy" / "prometheus" / "prometheus.yml"
    )
    grafana_mounts = {v["target"]: v.get("source") for v in gpu_stack["services"]["grafana"]["volumes"]}
    assert grafana_mounts["/etc/grafana/provisioning"] == str(ROOT / "deploy" / "grafana" / "provisioning")
    assert grafana_mounts["/var/lib/grafana/dashboards"] == str(ROOT / "deploy" / "grafana" / "dashboards")


def test_the_tracing_profile_adds_jaeger_and_tracing_is_off_until_an_endpoint_is_given(
    gpu_stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert "jaeger" not in gpu_stack["services"]
    assert not Tracing.from_environment(gpu_stack["services"]["bertserve"]["environment"]).enabled
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4317")  # as docs/deployment.md says
    traced = compose_config(BASE, profile="tracing")["services"]
    assert traced["jaeger"]["profiles"] == ["tracing"]
    assert any("grpc.endpoint=0.0.0.0:4317" in word for word in traced["jaeger"]["command"])
    tracing = Tracing.from_environment(traced["bertserve"]["environment"])
    assert tracing.enabled
    tracing.shutdown()
