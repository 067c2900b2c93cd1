"""The KServe example (k8s/kserve) renders, and each object fits the KServe SDK's models of its CRD.

No CRD schema is at hand offline, so the objects are checked against the models the KServe Python SDK
generates from the CRDs (and the Kubernetes client's models for the pod parts inside them), strictly:
every field must be known, of the right type, and the models' own validation (required fields,
enumerations) must pass.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kserve
import kubernetes.client
import pytest
import yaml

from app.api.error_response import V2_PREFIX
from tests.deploy.test_kubernetes import K8S_VERSIONS, VALIDATOR
from tests.deploy.tools import ROOT, output, run, venv_tool

KSERVE = ROOT / "k8s" / "kserve"
PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "bool": (bool,),
    "float": (int, float),
    "object": (object,),
    "datetime": (str,),
}
MODELS = {
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "V1alpha1ServingRuntime",
    ("serving.kserve.io/v1beta1", "InferenceService"): "V1beta1InferenceService",
}


def model_class(name: str) -> Any:
    found = getattr(kserve, name, None) or getattr(kubernetes.client, name, None)
    assert found is not None, f"no model {name}"
    return found


def check(data: Any, type_name: str, path: str) -> list[str]:
    """Problems of `data` against the generated model type `type_name` (e.g. V1Container, list[str])."""
    if match := re.fullmatch(r"list\[(.+)\]", type_name, flags=re.IGNORECASE):
        if not isinstance(data, list):
            return [f"{path}: expected a list"]
        return [p for i, item in enumerate(data) for p in check(item, match[1], f"{path}[{i}]")]
    if match := re.fullmatch(r"dict\(str, (.+)\)|Dict\[str, (.+)\]", type_name):
        if not isinstance(data, dict):
            return [f"{path}: expected a mapping"]
        inner = match[1] or match[2]
        return [p for key, value in data.items() for p in check(value, inner, f"{path}.{key}")]
    if type_name in PRIMITIVES:
        wanted = PRIMITIVES[type_name]
        return [] if isinstance(data, wanted) else [f"{path}: {data!r} is not {type_name}"]
    cls = model_class(type_name)
    if not isinstance(data, dict):
        return [f"{path}: expected a {type_name} object"]
    by_key = {key: attr for attr, key in cls.attribute_map.items()}
    problems = [f"{path}.{key}: unknown field of {type_name}" for key in data if key not in by_key]
    for key, value in data.items():
        if key in by_key:
            problems += check(value, cls.openapi_types[by_key[key]], f"{path}.{key}")
    if not problems:
        try:  # the model's own checks: required fields, enumerations
            cls(**{by_key[key]: value for key, value in data.items()})
        except (TypeError, ValueError) as error:
            problems.append(f"{path}: {error}")
    return problems


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    done = run([venv_tool("kubectl"), "kustomize", KSERVE], timeout=60)
    assert done.returncode == 0, output(done)
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, kind
    return found[0]


def test_every_object_fits_its_kserve_model(objects: list[dict[str, Any]]) -> None:
    assert {(o["apiVersion"], o["kind"]) for o in objects} == set(MODELS)
    for obj in objects:
        problems = check(obj, MODELS[obj["apiVersion"], obj["kind"]], obj["kind"])
        assert not problems, problems
        assert obj["metadata"]["namespace"] == "bertserve"


def test_the_runtime_pod_validates_as_a_pod(objects: list[dict[str, Any]], tmp_path: Path) -> None:
    """The pod parts of the runtime and the predictor, as one Pod, against Kubernetes' own schemas."""
    runtime, service = one(objects, "ServingRuntime"), one(objects, "InferenceService")
    spec = {key: runtime["spec"][key] for key in ("containers", "volumes", "tolerations")}
    container = spec["containers"][0]
    container["resources"] = service["spec"]["predictor"]["model"]["resources"]  # the predictor's win
    spec["terminationGracePeriodSeconds"] = service["spec"]["predictor"]["terminationGracePeriodSeconds"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bertserve"}, "spec": spec}
    path = tmp_path / "pod.yaml"
    path.write_text(yaml.safe_dump(pod))
    versions = [arg for v in K8S_VERSIONS for arg in ("--k8s-version", v)]
    done = run([venv_tool("python"), VALIDATOR, *versions, path], timeout=120)
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and len(records) == len(K8S_VERSIONS), output(done)


def test_the_checker_rejects_broken_objects(objects: list[dict[str, Any]]) -> None:
    """Negative control: a misspelt field, deep in a container or at the top of a spec, fails."""
    runtime = yaml.safe_load(yaml.safe_dump(one(objects, "ServingRuntime")))
    runtime["spec"]["containers"][0]["readinesProbe"] = runtime["spec"]["containers"][0].pop("readinessProbe")
    assert any(
        "readinesProbe: unknown field of V1Container" in p
        for p in check(runtime, MODELS[runtime["apiVersion"], runtime["kind"]], "x")
    )
    service = yaml.safe_load(yaml.safe_dump(one(objects, "InferenceService")))
    service["spec"]["predictor"]["model"]["modelFormat"]["nam"] = "x"
    assert check(service, MODELS[service["apiVersion"], service["kind"]], "x")


def test_the_service_uses_the_runtime_and_the_protocol(objects: list[dict[str, Any]]) -> None:
    runtime, service = one(objects, "ServingRuntime"), one(objects, "InferenceService")
    model = service["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["modelFormat"] in [
        {"name": f["name"], "version": f["version"]} for f in runtime["spec"]["supportedModelFormats"]
    ]
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"] == ["v2"]
    container = runtime["spec"]["containers"][0]
    port = container["ports"][0]["containerPort"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["BERTSERVE_PORT"] == str(port)
    for probe, path in [("livenessProbe", "/health/live"), ("readinessProbe", "/health/ready")]:
        assert container[probe]["httpGet"] == {"path": f"{V2_PREFIX}{path}", "port": port}
    assert container["securityContext"]["runAsNonRoot"] is True
    assert service["spec"]["predictor"]["model"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
