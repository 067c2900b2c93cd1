"""The training loop: AdamW, linear warmup/decay, gradient clipping, progress lines with ETA."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedModel, get_linear_schedule_with_warmup

from tools.training.batching import Feature, batch_order, collate
from tools.training.config import TrainConfig

Log = Callable[[str], None]


class DivergedError(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainStats:
    """What the loop did, for training_args.json."""

    steps: int = 0
    epochs_run: float = 0.0
    examples_seen: int = 0
    tokens_seen: int = 0
    padded_tokens: int = 0
    seconds: float = 0.0
    final_loss: float = float("nan")
    loss_curve: list[tuple[int, float]] = field(default_factory=list)


def _fmt_time(seconds: float) -> str:
    seconds = int(seconds)
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"
        if seconds >= 3600
        else (f"{seconds // 60}m{seconds % 60:02d}s")
    )


def _param_groups(model: PreTrainedModel, weight_decay: float) -> list[dict[str, object]]:
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def planned_steps(n_features: int, cfg: TrainConfig) -> int:
    """Optimizer steps the run will take: `epochs` passes, capped by `max_steps`."""
    per_epoch = math.ceil(n_features / cfg.batch_size)
    total = math.ceil(per_epoch * cfg.epochs)
    return min(total, cfg.max_steps) if cfg.max_steps else total


def train(model: PreTrainedModel, features: Sequence[Feature], cfg: TrainConfig, log: Log) -> TrainStats:
    """Fine-tune `model` in place on `features`; raises DivergedError on a non-finite loss."""
    total = planned_steps(len(features), cfg)
    lengths = [len(f["input_ids"]) for f in features]
    # fused: one kernel for all parameters, ~0.2 s a step less than the per-tensor loop on one CPU thread
    optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, fused=True)
    scheduler = get_linear_schedule_with_warmup(optimizer, round(total * cfg.warmup_ratio), total)
    stats = TrainStats()
    model.train()
    start = time.perf_counter()
    window: list[float] = []
    epoch = 0
    log(f"training: {len(features)} features, batch {cfg.batch_size}, {total} steps, lr {cfg.lr:g}")
    while stats.steps < total:
        batches = batch_order(
            lengths, cfg.batch_size, seed=cfg.seed, epoch=epoch, bucket_factor=cfg.bucket_factor
        )
        for i, indices in enumerate(batches):
            batch = collate([features[j] for j in indices])
            loss = model(**batch).loss
            if not torch.isfinite(loss):
                raise DivergedError(f"loss is {loss.item()} at step {stats.steps + 1}")
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            stats.steps += 1
            stats.examples_seen += len(indices)
            stats.tokens_seen += int(batch["attention_mask"].sum())
            stats.padded_tokens += batch["input_ids"].numel()
            window.append(loss.item())
            stats.epochs_run = epoch + (i + 1) / len(batches)
            if stats.steps % cfg.log_every == 0 or stats.steps == total:
                elapsed = time.perf_counter() - start
                avg = sum(window) / len(window)
                stats.loss_curve.append((stats.steps, round(avg, 5)))
                stats.final_loss = avg
                window = []
                eta = elapsed / stats.steps * (total - stats.steps)
                log(
                    f"step {stats.steps}/{total} epoch {stats.epochs_run:.2f} loss {avg:.4f} "
                    f"lr {scheduler.get_last_lr()[0]:.2e} {stats.examples_seen / elapsed:.1f} ex/s "
                    f"{elapsed / stats.steps:.2f} s/step elapsed {_fmt_time(elapsed)} ETA {_fmt_time(eta)}"
                )
            if stats.steps >= total:
                break
        epoch += 1
    stats.seconds = time.perf_counter() - start
    model.eval()
    return stats
