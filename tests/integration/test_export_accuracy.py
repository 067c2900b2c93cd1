"""export --eval-data: every variant scored on labelled data against PyTorch fp32 through the
server's own tasks, int8 served by default only within the accuracy budget."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

from app.contract.manifest import AccuracyBudget, Manifest
from export.accuracy import EvalOptions
from export.errors import UsageError
from export.pipeline import export_model
from export.repository import build_repository
from tests.conftest import TINY_TOLERANCES
from tests.harness import run_server

REVIEWS = [
    ("A gripping, beautifully acted film.", 1),
    ("Dull, slow and far too long.", 0),
    ("I laughed all the way through.", 1),
    ("The plot makes no sense at all.", 0),
    ("One of the best films of the year.", 1),
    ("A waste of a talented cast.", 0),
    ("Warm, funny and wise.", 1),
    ("Nothing happens for two hours.", 0),
    ("The music alone is worth the ticket.", 1),
    ("Painfully predictable from the first scene.", 0),
    ("An instant classic.", 1),
    ("Forgettable.", 0),
]


@pytest.fixture(scope="module")
def reviews(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("eval") / "reviews.jsonl"
    labels = ["NEGATIVE", "POSITIVE"]  # a gold label may be a name or an id
    lines = [
        json.dumps({"text": text, "label": labels[label] if i % 2 else label})
        for i, (text, label) in enumerate(REVIEWS)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def export(checkpoint: Path, out: Path, evaluation: EvalOptions | None) -> Manifest:
    return export_model(
        str(checkpoint),
        "classify",
        out,
        precisions=("fp32", "fp16", "int8"),
        tolerances=TINY_TOLERANCES,
        evaluation=evaluation,
    )


def test_every_variant_and_candidate_is_scored_and_int8_follows_the_budget(
    tiny_checkpoints: dict[str, Path], tmp_path: Path, reviews: Path
) -> None:
    manifest = export(tiny_checkpoints["classify"], tmp_path / "m", EvalOptions(reviews, limit=10, seed=3))
    data = manifest.evaluation
    assert data is not None and (data.name, data.examples, data.total, data.labelled) == (
        "reviews.jsonl",
        10,
        len(REVIEWS),
        True,
    )
    assert manifest.budget == AccuracyBudget()
    fp32, fp16, int8 = manifest.variants
    assert fp32.accuracy is not None and fp32.accuracy.agreement == 1.0 and fp32.accuracy.within_budget
    assert fp32.accuracy.metrics == fp32.accuracy.reference_metrics and "accuracy" in fp32.accuracy.metrics
    assert fp16.accuracy is None  # fp16 is scored where it is served: on CUDA
    assert fp32.default and not fp32.batch_dependent and int8.batch_dependent
    scored = [c for c in int8.candidates if c.parity.passed]
    assert scored and all(c.accuracy is not None and c.accuracy.examples == 10 for c in scored)
    (chosen,) = [c for c in int8.candidates if c.chosen]
    within = [c for c in scored if c.accuracy is not None and c.accuracy.within_budget]
    assert int8.default == bool(within)
    if within:  # the fastest within the budget
        assert chosen.sequences_per_second == max(c.sequences_per_second or 0 for c in within)
    assert int8.accuracy == chosen.accuracy


def test_int8_outside_the_budget_is_written_but_auto_serves_fp32(
    tiny_checkpoints: dict[str, Path], tmp_path: Path, reviews: Path
) -> None:
    unreachable = AccuracyBudget(min_agreement=1.01)  # no answer set can be more than all equal
    repository = tmp_path / "models"
    manifest = export(
        tiny_checkpoints["classify"], repository / "reviews", EvalOptions(reviews, budget=unreachable)
    )
    int8 = manifest.variants[-1]
    assert int8.precision == "int8" and int8.parity.passed and not int8.default
    assert int8.accuracy is not None and not int8.accuracy.within_budget
    for precision, served in (("auto", "fp32"), ("int8", "int8")):
        (tmp_path / precision).mkdir()
        with run_server(repository, tmp_path / precision, env={"BERTSERVE_PRECISION": precision}) as server:
            (entry,) = httpx.get(f"{server.url}/v1/models").json()["models"]
            assert entry["precision"] == served
            assert entry["evaluation"]["name"] == "reviews.jsonl"
            assert entry["budget"]["min_agreement"] == 1.01
            assert entry["accuracy"]["examples"] == len(REVIEWS)
            assert "equal PyTorch fp32's" in server.log()


def test_without_evaluation_data_int8_is_not_served_by_default(
    tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    manifest = export(tiny_checkpoints["classify"], tmp_path / "m", None)
    assert manifest.evaluation is None and manifest.budget is None
    assert all(v.accuracy is None for v in manifest.variants)
    assert manifest.variant("int8") is not None and manifest.variant("int8", by_default=True) is None


def test_bad_evaluation_data_fails_the_export_before_any_graph(
    tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine", "label": 1}\n{"text": "x", "label": "MAYBE"}\n', encoding="utf-8")
    with pytest.raises(UsageError, match=r"record 2 .*MAYBE"):
        export(tiny_checkpoints["classify"], tmp_path / "m", EvalOptions(bad))
    assert not (tmp_path / "m").exists()


def test_the_repository_rescores_when_the_evaluation_data_changes(
    tiny_checkpoints: dict[str, Path], tmp_path: Path, reviews: Path
) -> None:
    demo, models, data = tmp_path / "demo", tmp_path / "models", tmp_path / "data"
    demo.mkdir()
    shutil.copytree(tiny_checkpoints["classify"], demo / "sentiment")
    spec = {"task": "classify", "precisions": ["fp32", "int8"], "eval_data": "reviews.jsonl", "eval_limit": 6}
    (demo / "sentiment" / "bertserve.json").write_text(json.dumps(spec))
    data.mkdir()
    shutil.copy(reviews, data / "reviews.jsonl")

    def build() -> tuple[list[str], list[str]]:
        report = build_repository(demo, models, progress=lambda _: None, data_dir=data)
        assert not report.failed
        return report.exported, report.skipped

    assert build() == (["sentiment"], [])
    evaluation = Manifest.read(models / "sentiment").evaluation
    assert evaluation is not None and evaluation.examples == 6
    assert build() == ([], ["sentiment"])
    with (data / "reviews.jsonl").open("a", encoding="utf-8") as more:
        more.write(json.dumps({"text": "Superb.", "label": 1}) + "\n")
    assert build() == (["sentiment"], [])
    lines: list[str] = []
    build_repository(demo, models, progress=lines.append, data_dir=tmp_path / "elsewhere")
    assert any("no evaluation data reviews.jsonl" in line for line in lines)
    assert Manifest.read(models / "sentiment").evaluation is None
