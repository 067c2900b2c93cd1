"""Shared fixtures of the deployment tests: the rendered Kustomize overlays, parsed once per session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import ROOT, output, run, venv_tool

OVERLAYS = ("gpu", "cpu")


@dataclass(frozen=True)
class Rendered:
    """One overlay rendered by `kubectl kustomize`: the file it was written to and its objects."""

    overlay: str
    path: Path
    objects: list[dict[str, Any]]

    def one(self, kind: str) -> dict[str, Any]:
        found = [o for o in self.objects if o["kind"] == kind]
        assert len(found) == 1, f"{self.overlay}: expected one {kind}, found {len(found)}"
        return found[0]

    def kinds(self) -> set[str]:
        return {o["kind"] for o in self.objects}


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    """Every overlay under k8s/overlays rendered with kubectl's built-in kustomize."""
    kubectl = venv_tool("kubectl")
    out_dir = tmp_path_factory.mktemp("rendered")
    result: dict[str, Rendered] = {}
    for overlay in OVERLAYS:
        done = run([kubectl, "kustomize", ROOT / "k8s" / "overlays" / overlay], timeout=60)
        assert done.returncode == 0, output(done)
        path = out_dir / f"{overlay}.yaml"
        path.write_text(done.stdout)
        objects = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
        result[overlay] = Rendered(overlay, path, objects)
    return result
