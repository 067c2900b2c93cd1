"""Validate Grafana dashboards with the Grafana Foundation SDK's dashboard model. Runs in the tools venv:

    .venv-tools/bin/python tests/deploy/validate_dashboard.py deploy/grafana/dashboards/bertserve.json

Each dashboard is decoded into the SDK's types (dashboard, panels with their panel-type options and field
config, Prometheus data queries, variables; an invalid enum or shape raises) and encoded again; every field
of the file must survive that round trip unchanged, so an unknown or misspelled field is an error. Prints
one JSON line per dashboard and exits 1 when any fails.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def differences(original: Any, decoded: Any, path: str = "") -> list[str]:
    """Where `decoded` lost or changed something of `original` (fields it adds, e.g. defaults, are fine)."""
    if isinstance(original, dict):
        if not isinstance(decoded, dict):
            return [f"{path or '.'}: became {type(decoded).__name__}"]
        found = []
        for key, value in original.items():
            if key not in decoded:
                found.append(f"{path}.{key}: unknown field (dropped by the model)")
            else:
                found += differences(value, decoded[key], f"{path}.{key}")
        return found
    if isinstance(original, list):
        if not isinstance(decoded, list) or len(original) != len(decoded):
            return [f"{path}: list changed"]
        return [
            d
            for i, (a, b) in enumerate(zip(original, decoded, strict=True))
            for d in differences(a, b, f"{path}[{i}]")
        ]
    return [] if original == decoded else [f"{path}: {original!r} became {decoded!r}"]


def validate(path: Path) -> dict[str, Any]:
    from grafana_foundation_sdk.cog import plugins
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import Dashboard, Panel

    plugins.register_default_plugins()
    original = json.loads(path.read_text())
    try:
        dashboard = Dashboard.from_json(original)
    except Exception as error:  # the SDK raises KeyError / ValueError / TypeError on bad shapes
        return {
            "file": str(path),
            "ok": False,
            "errors": [f"does not decode: {type(error).__name__}: {error}"],
        }
    errors = differences(original, json.loads(JSONEncoder().encode(dashboard)))
    panels = [p for p in dashboard.panels or [] if isinstance(p, Panel)]
    for panel in panels:
        if panel.options is not None and isinstance(panel.options, dict):
            errors.append(f"panel {panel.title!r}: no model for panel type {panel.type_val!r}")
        for target in panel.targets or []:
            if type(target).__module__.rsplit(".", 1)[-1] != "prometheus":
                errors.append(f"panel {panel.title!r}: a target that is no Prometheus query")
    return {"file": str(path), "ok": not errors, "panels": len(panels), "errors": errors}


def main(paths: list[str]) -> int:
    results = [validate(Path(p)) for p in paths]
    for result in results:
        print(json.dumps(result))
    return 0 if results and all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
