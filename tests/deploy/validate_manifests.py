"""Validate rendered Kubernetes objects against their schemas. Runs in the tools venv, not the project's:

    .venv-tools/bin/python tests/deploy/validate_manifests.py --k8s-version 1.30.0 rendered.yaml ...

Built-in kinds: kubernetes-validate's JSON schemas for that Kubernetes version, strict (unknown fields are
errors). Prometheus Operator kinds (ServiceMonitor, PrometheusRule): the pydantic models generated from the
operator's CRDs (cloudcoil.models.prometheus_operator), strict too: an object must survive a round trip
through its model unchanged, so an unknown or misspelled field is an error. Prints one JSON line per object
and exits 1 when any object fails or has no schema.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml


def _crd_models() -> dict[tuple[str, str], Any]:
    from cloudcoil.models.prometheus_operator import v1

    return {
        ("monitoring.coreos.com/v1", "ServiceMonitor"): v1.ServiceMonitor,
        ("monitoring.coreos.com/v1", "PrometheusRule"): v1.PrometheusRule,
        ("monitoring.coreos.com/v1", "PodMonitor"): v1.PodMonitor,
    }


def _differences(want: Any, got: Any, path: str = "") -> list[str]:
    """Where `got` (the round-tripped object) differs from `want` (the input)."""
    if isinstance(want, dict) and isinstance(got, dict):
        found: list[str] = []
        for key in want:
            if key not in got:
                found.append(f"{path}.{key}: unknown field")
            else:
                found.extend(_differences(want[key], got[key], f"{path}.{key}"))
        return found
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        return [
            d
            for i, (w, g) in enumerate(zip(want, got, strict=True))
            for d in _differences(w, g, f"{path}[{i}]")
        ]
    return [] if want == got else [f"{path}: {want!r} became {got!r}"]


def validate_crd(obj: dict[str, Any], model: Any) -> str | None:
    from pydantic import ValidationError

    try:
        parsed = model.model_validate(obj)
    except ValidationError as error:
        return str(error)
    back = parsed.model_dump(mode="json", by_alias=True, exclude_unset=True)
    problems = _differences(obj, back)
    return "; ".join(problems) if problems else None


def validate_builtin(obj: dict[str, Any], version: str) -> str | None:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.SchemaNotFoundError as error:
        return f"no schema: {error}"
    except kubernetes_validate.ValidationError as error:
        return f"{'.'.join(str(p) for p in error.path)}: {error.message}"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--k8s-version", action="append", required=True, help="e.g. 1.30.0; repeatable")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    crds = _crd_models()
    failed = False
    for path in args.files:
        for obj in yaml.safe_load_all(path.read_text()):
            if not obj:
                continue
            key = (obj.get("apiVersion", ""), obj.get("kind", ""))
            name = obj.get("metadata", {}).get("name", "")
            if key in crds:
                checks = [("crd:" + key[0], validate_crd(obj, crds[key]))]
            else:
                checks = [(f"kubernetes-{v}", validate_builtin(obj, v)) for v in args.k8s_version]
            for schema, error in checks:
                failed |= error is not None
                record = {"file": str(path), "kind": key[1], "name": name, "schema": schema, "error": error}
                print(json.dumps(record))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
