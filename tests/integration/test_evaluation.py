"""`python -m tools.evaluation` end to end on the tiny heads and a hand-made data set in the real formats.

The tiny heads are random, so the metrics mean nothing; what is checked is that every task's path
runs (pipeline, real server over HTTP, scoring, report) and that fp32 agrees with the pipeline on
every example.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from tools.evaluation.__main__ import main
from tools.evaluation.heads import Target, demo_targets
from tools.evaluation.report import format_table, markdown_table
from tools.evaluation.runner import Settings, evaluate

LONG_CONTEXT = " ".join(
    f"In {1800 + i} the committee met in Geneva to discuss the budget of the museum." for i in range(40)
)


def write_data(root: Path) -> Path:
    """A few examples per data set, in the formats of ../shared/data."""
    (root / "sst2").mkdir(parents=True)
    rows = ["1\ta charming and often affecting journey . ", "0\tdull , lifeless and badly acted "]
    (root / "sst2" / "dev.tsv").write_text("label\ttext_a\n" + "\n".join(rows * 3) + "\n")
    (root / "mrpc").mkdir()
    pairs = [
        '1\t1\t2\tHe said "yes" to the plan.\tHe agreed to the plan.',
        "0\t3\t4\tShares fell 5% on Monday.\tThe company opened a new office in Paris.",
    ]
    header = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
    (root / "mrpc" / "dev.tsv").write_text(header + "\n".join(pairs * 2) + "\n", encoding="utf-8-sig")
    (root / "conll2003").mkdir()
    sentences = [
        "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\ncall NN I-NP O\n",
        "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\nvisited VBD B-VP O\nU.S. NNP B-NP B-LOC\n",
    ]
    (root / "conll2003" / "valid.txt").write_text("-DOCSTART- -X- -X- O\n\n" + "\n".join(sentences * 2))
    (root / "squad").mkdir()
    context = "The Eiffel Tower was completed in 1889. It stands in Paris, the capital of France."
    qas = [
        {"id": "q1", "question": "When was it completed?", "answers": [{"text": "1889", "answer_start": 34}]},
        {"id": "q2", "question": "Where?", "answers": [{"text": "Paris", "answer_start": 53}]},
    ]
    long_qas = [  # several windows of 384 tokens: the stride path on both sides
        {"id": "q3", "question": "Where did they meet?", "answers": [{"text": "Geneva", "answer_start": 28}]}
    ]
    paragraphs = [{"context": context, "qas": qas}, {"context": LONG_CONTEXT, "qas": long_qas}]
    squad = {"version": "1.1", "data": [{"title": "T", "paragraphs": paragraphs}]}
    (root / "squad" / "dev.json").write_text(json.dumps(squad))
    return root


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_data(tmp_path_factory.mktemp("data"))


def test_tiny_heads_agree_with_the_pipeline(
    tiny_checkpoints: dict[str, Path], tiny_models: Path, data_dir: Path
) -> None:
    files = {
        "classify": "sst2/dev.tsv",
        "pair": "mrpc/dev.tsv",
        "ner": "conll2003/valid.txt",
        "qa": "squad/dev.json",
    }
    targets = [
        Target(f"tiny-{task}", task, tiny_checkpoints[task], data_dir / f) for task, f in files.items()
    ]
    rows, unscored = evaluate(
        targets, tiny_models, Settings(precisions=("fp32", "auto"), batch=2, concurrency=2)
    )
    assert unscored == {}

    assert [(r.head, r.precision) for r in rows] == [(t.name, p) for t in targets for p in ("fp32", "auto")]
    examples = {"classify": 6, "pair": 4, "ner": 4, "qa": 3}
    for row in rows:
        assert row.examples == examples[row.task]
        # the tiny heads were exported with --int8-choice fastest: auto serves their int8
        served = {"fp32": "fp32", "auto": "int8"}[row.precision]
        assert row.served == f"{served} on CPUExecutionProvider"
        assert set(row.metrics) == set(row.reference) and row.metrics
        assert row.passed is not None and row.goal
        if row.precision == "fp32":
            assert row.agreement == 100.0, row
            assert row.metrics == pytest.approx(row.reference)
            assert row.passed
    table = format_table(rows)
    assert "tiny-qa" in table and "exact_match" in table and "agreement >= 99.9 %" in table
    assert "auto (int8 on CPUExecutionProvider)" in table and "agreement >= 97 %" in table
    assert markdown_table(rows).count("\n") == 2 + sum(len(r.metrics) for r in rows) - 1


def test_cli_builds_the_repository_scores_and_writes_json(
    tiny_checkpoints: dict[str, Path], data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = tmp_path / "demo"
    shutil.copytree(tiny_checkpoints["classify"], demo / "sst2-minilm")
    (demo / "sst2-minilm" / "bertserve.json").write_text('{"task": "classify", "precisions": ["fp32"]}')
    models, out = tmp_path / "models", tmp_path / "eval.json"
    argv = ["--demo-dir", str(demo), "--models-dir", str(models), "--data-dir", str(data_dir)]
    status = main([*argv, "--precisions", "fp32", "--out", str(out)])

    assert status == 0
    assert "sst2-minilm missing or stale; building the repository" in capsys.readouterr().err
    assert (models / "sst2-minilm" / "manifest.json").is_file()
    report = json.loads(out.read_text())
    assert report["goals_met"] is True and report["not_scored"] == {}
    assert [(r["head"], r["precision"], r["agreement"]) for r in report["rows"]] == [
        ("sst2-minilm", "fp32", 100.0)
    ]
    assert set(report["skipped"]) == {"mrpc-minilm", "conll-minilm", "squad-minilm"}
    assert "no checkpoint at" in report["skipped"]["squad-minilm"]


def test_missing_data_skips_with_a_clear_message(
    tiny_checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = tmp_path / "demo"
    shutil.copytree(tiny_checkpoints["classify"], demo / "sst2-minilm")
    (demo / "sst2-minilm" / "bertserve.json").write_text('{"task": "classify"}')
    missing = tmp_path / "no-data"

    targets, skipped = demo_targets(demo, missing)
    assert targets == []
    assert skipped["sst2-minilm"] == (
        f"no data at {missing / 'sst2' / 'dev.tsv'} (pass --data-dir or set BERTSERVE_DATA_DIR)"
    )

    out = tmp_path / "eval.json"
    argv = ["--demo-dir", str(demo), "--data-dir", str(missing), "--models-dir", str(tmp_path / "m")]
    assert main([*argv, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"skip sst2-minilm: no data at {missing / 'sst2' / 'dev.tsv'}" in err
    assert "nothing to evaluate" in err
    assert not out.exists() and not (tmp_path / "m").exists()


def test_a_variant_the_export_refused_is_reported_not_served(
    tiny_checkpoints: dict[str, Path], tiny_models: Path, data_dir: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    shutil.copytree(tiny_models / "tiny-classify", models / "tiny-classify")
    manifest_path = models / "tiny-classify" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for variant in manifest["variants"]:
        if variant["precision"] == "int8":
            variant["parity"].update(passed=False, decision_agreement=0.5)
    manifest_path.write_text(json.dumps(manifest))
    target = Target("tiny-classify", "classify", tiny_checkpoints["classify"], data_dir / "sst2" / "dev.tsv")

    rows, unscored = evaluate([target], models, Settings(precisions=("int8",)))
    assert rows == []
    assert list(unscored) == ["tiny-classify int8"]
    assert (
        "the export refused its int8 variant (decision agreement 50.00% < " in unscored["tiny-classify int8"]
    )
