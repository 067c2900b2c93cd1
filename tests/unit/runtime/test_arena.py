"""The shared CPU arena: models that run one after another hold one peak between them, not one each."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from onnx import TensorProto, helper

from tests.unit.runtime.test_runtime import save_checked

MODELS = 4
WIDE = 4096  # the intermediate is batch x sequence x WIDE floats: 16 MB for the feed below

# In a fresh process (the shared arena is registered once per process): open MODELS sessions of
# the same graph, run each once on the same feed, and report how much resident memory that took.
PROBE = """
import json, re, sys
from pathlib import Path
from typing import Any
import numpy as np
from app.runtime.providers import open_session
from app.settings import Settings

def rss_mb():
    return int(re.search(r"VmRSS:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024

path, mode, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
settings = Settings(device="cpu", cpu_arena=mode, intra_op_threads=1)
sessions = [open_session(path, settings).session for _ in range(count)]
feed = {"x": np.ones((8, 128), dtype=np.float32)}
before = rss_mb()
sums = [float(s.run(None, feed)[0].sum()) for s in sessions]
print(json.dumps({"grew_mb": rss_mb() - before, "sums": sums}))
"""


def build_wide_model(path: Path) -> Path:
    """y[b] = sum(tile(x, WIDE)[b]): a big intermediate, a tiny output."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "sequence"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])
    repeats = helper.make_tensor("repeats", TensorProto.INT64, [2], [1, WIDE])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    nodes = [
        helper.make_node("Tile", ["x", "repeats"], ["wide"]),
        helper.make_node("ReduceSum", ["wide", "axes"], ["y"], keepdims=1),
    ]
    return save_checked(helper.make_graph(nodes, "wide", [x], [y], initializer=[repeats, axes]), path)


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wide_model(tmp_path_factory.mktemp("wide") / "model.onnx")


def growth(model: Path, mode: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(model), mode, str(MODELS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_one_shared_arena_holds_one_peak_where_per_model_arenas_hold_one_each(wide_model: Path) -> None:
    shared, per_model = growth(wide_model, "shared"), growth(wide_model, "per-model")
    assert shared["sums"] == per_model["sums"] == [8 * 128.0 * WIDE] * MODELS
    peak_mb = 8 * 128 * WIDE * 4 / 2**20
    assert per_model["grew_mb"] > (MODELS - 1) * peak_mb, (shared, per_model)
    assert shared["grew_mb"] < 2 * peak_mb, (shared, per_model)
