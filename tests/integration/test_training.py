"""`python -m tools.training` end to end with a tiny random BERT: a few steps per head, then the folder
checked.

One test runs on hand-made data in the shared formats (always); one on a slice of the real data
(skipped when ../shared/data, or $BERTSERVE_DATA_DIR, is absent).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("seqeval")

from tests.tiny import build_tiny_checkpoint  # noqa: E402
from tools.training.cli import main  # noqa: E402
from tools.training.config import default_data_dir  # noqa: E402

OUT_NAMES = {"sst2": "sst2-minilm", "mrpc": "mrpc-minilm", "conll": "conll-minilm", "squad": "squad-minilm"}
TASKS = {"sst2": "classify", "mrpc": "pair", "conll": "ner", "squad": "qa"}
FILES = (
    "model.safetensors",
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
    "bertserve.json",
    "training_args.json",
    "dev_scores.json",
    "README.md",
)
SCORE_ROW = re.compile(r"^\| (accuracy|f1|exact_match) \| \d+\.\d\d \|$", re.MULTILINE)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny-base")
    return build_tiny_checkpoint("classify", out, layers=1, hidden=32, heads=2)


@pytest.fixture(autouse=True)
def _keep_torch_threads() -> Iterator[None]:
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def write_handmade_data(root: Path) -> Path:
    """A few examples of each data set, in the same file formats as ../shared/data."""
    (root / "sst2").mkdir(parents=True)
    rows = [
        "1\ta charming and often affecting journey . ",
        "0\tunflinchingly bleak and desperate ",
        "1\tthe best film of the year ",
        "0\tdull , lifeless and badly acted ",
    ]
    for split in ("train", "dev"):
        (root / "sst2" / f"{split}.tsv").write_text("label\ttext_a\n" + "\n".join(rows * 2) + "\n")
    (root / "mrpc").mkdir()
    pairs = [
        '1\t1\t2\tHe said "yes" to the plan.\tHe agreed to the plan.',
        "0\t3\t4\tShares fell 5% on Monday.\tThe company opened a new office in Paris.",
    ]
    for split in ("train", "dev"):
        text = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n" + "\n".join(pairs * 3) + "\n"
        (root / "mrpc" / f"{split}.tsv").write_text(text, encoding="utf-8-sig")
    (root / "conll2003").mkdir()
    sentences = [
        "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\ncall NN I-NP O\n",
        "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\nvisited VBD B-VP O\nBrussels NNP B-NP B-LOC\n",
    ]
    for split in ("train", "valid"):
        text = "-DOCSTART- -X- -X- O\n\n" + "\n".join(sentences * 3)
        (root / "conll2003" / f"{split}.txt").write_text(text)
    (root / "squad").mkdir()
    context = "The Eiffel Tower was completed in 1889. It stands in Paris, the capital of France."
    qas = [
        {
            "id": "q1",
            "question": "When was the tower completed?",
            "answers": [{"text": "1889", "answer_start": context.index("1889")}],
        },
        {
            "id": "q2",
            "question": "Where does it stand?",
            "answers": [
                {"text": "Paris", "answer_start": context.index("Paris")},
                {"text": "in Paris", "answer_start": context.index("in Paris")},
            ],
        },
    ]
    squad = {"version": "1.1", "data": [{"title": "Tower", "paragraphs": [{"context": context, "qas": qas}]}]}
    for split in ("train", "dev"):
        (root / "squad" / f"{split}.json").write_text(json.dumps(squad))
    return root


def train_and_check(head: str, data_dir: Path, base: Path, out_root: Path, *extra: str) -> dict[str, Any]:
    out = out_root / OUT_NAMES[head]
    argv = [
        "--head",
        head,
        "--out",
        str(out),
        "--data-dir",
        str(data_dir),
        "--base-model",
        str(base),
        "--max-steps",
        "2",
        "--batch-size",
        "4",
        "--max-length",
        "64",
        "--stride",
        "16",
        "--threads",
        "1",
        "--log-every",
        "1",
        *extra,
    ]
    assert main(argv) == 0
    for name in FILES:
        assert (out / name).is_file(), name
    assert json.loads((out / "bertserve.json").read_text()) == {"task": TASKS[head]}
    args = json.loads((out / "training_args.json").read_text())
    assert args["steps"] == 2 and math.isfinite(args["final_loss"])
    assert args["settings"]["seed"] == 42 and len(args["data"]["train"]["sha256"]) == 64
    tokenizer = json.loads((out / "tokenizer.json").read_text())
    assert tokenizer["truncation"] is None and tokenizer["padding"] is None

    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}  # noqa: SIM118
    model_class = {
        "classify": "BertForSequenceClassification",
        "pair": "BertForSequenceClassification",
        "ner": "BertForTokenClassification",
        "qa": "BertForQuestionAnswering",
    }[TASKS[head]]
    import transformers

    model = getattr(transformers, model_class).from_pretrained(out, dtype=torch.float32)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    if head == "conll":
        assert list(model.config.id2label.values())[:3] == ["O", "B-PER", "I-PER"]
    if head == "mrpc":
        assert model.config.id2label == {0: "not_equivalent", 1: "equivalent"}

    card = (out / "README.md").read_text()
    assert "## Dev scores" in card and SCORE_ROW.search(card), card
    scores: dict[str, Any] = json.loads((out / "dev_scores.json").read_text())
    assert scores["unit"] == "percent"
    return scores


@pytest.mark.parametrize("head", list(OUT_NAMES))
def test_each_head_on_handmade_data(head: str, tiny_base: Path, tmp_path: Path) -> None:
    data_dir = write_handmade_data(tmp_path / "data")
    scores = train_and_check(head, data_dir, tiny_base, tmp_path / "demo")
    metric = {"sst2": "accuracy", "mrpc": "f1", "conll": "f1", "squad": "exact_match"}[head]
    assert 0.0 <= scores[metric] <= 100.0


def test_each_head_on_a_slice_of_the_real_data(tiny_base: Path, tmp_path: Path) -> None:
    data_dir = default_data_dir()
    if not (data_dir / "sst2" / "train.tsv").is_file():
        pytest.skip(f"real data not found at {data_dir}: set BERTSERVE_DATA_DIR to ../shared/data")
    for head in OUT_NAMES:
        limits = ("--train-limit", "16", "--dev-limit", "8")
        train_and_check(head, data_dir, tiny_base, tmp_path / "demo", *limits)
