"""The int8 candidates: quantized side by side in worker processes, each validated (and scored on the
evaluation data) as it comes back, the passing ones timed, and one chosen (see `choose`)."""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from app.contract.manifest import Int8Candidate, Variant
from app.runtime.gate import usable_cores
from export import optimize, speed
from export.validate import Batch

if TYPE_CHECKING:
    import onnxruntime as ort

Int8Choice = Literal["budget", "fastest", "accurate"]
Graph = Literal["fused", "partial", "unfused"]
# Validates one candidate file (fusion checked or not): its figures and the session that measured them.
Validator = Callable[[Path, bool], tuple[Variant, "ort.InferenceSession"]]


@dataclass(frozen=True)
class Int8Plan:
    """One way to quantize: from which graph, weight granularity, which MatMuls stay fp32."""

    graph: Graph
    per_channel: bool
    keep: Literal["", "head", "head+edges", "head+ffn-out"] = ""

    @property
    def name(self) -> str:
        granularity = "channel" if self.per_channel else "tensor"
        return f"{self.graph}-{granularity}" + (f"-keep-{self.keep.replace('+', '-')}" if self.keep else "")


# fused: as the fp32 variant; partial: LayerNorm, GELU and embeddings fused, attention left as
# MatMuls; unfused: the plain export. Each per tensor and per channel (7-bit, see to_int8).
FULL_INT8 = [
    Int8Plan(graph, per_channel) for graph in ("fused", "partial", "unfused") for per_channel in (False, True)
]
# Tried when no fully quantized graph is good enough: MatMuls only, per channel, with the task head
# kept in fp32, and also the first and last layer, or every feed-forward output projection.
PARTIAL_INT8 = [
    Int8Plan("unfused", True, "head"),
    Int8Plan("unfused", True, "head+edges"),
    Int8Plan("unfused", True, "head+ffn-out"),
]


@dataclass(frozen=True)
class Trial:
    plan: Int8Plan
    file: Path
    variant: Variant
    fp32_nodes: int
    session: ort.InferenceSession


@dataclass(frozen=True)
class Chosen:
    variant: Variant  # the written int8 variant, with every candidate's figures
    fp32_speed: float  # sequences per second of the fused fp32 graph, timed beside the candidates


def workers() -> int:
    """Quantization is single-threaded Python and numpy: one worker per core, at most 4."""
    return max(1, min(4, usable_cores()))


def _quantize(plan: Int8Plan, src: Path, dst: Path, keep: list[str]) -> None:
    """In a worker process: write one candidate graph. The quantizer writes a shape-inferred copy
    next to its source, so each worker reads the source through a hard link in a folder of its own."""
    with tempfile.TemporaryDirectory(dir=dst.parent) as private:
        linked = Path(private) / src.name
        os.link(src, linked)
        optimize.to_int8(
            linked,
            dst,
            per_channel=plan.per_channel,
            keep_fp32=keep,
            op_types=["MatMul"] if plan.keep else None,
        )


def build_trials(
    plans: Sequence[Int8Plan],
    sources: Mapping[Graph, Path | Callable[[], Path]],
    work: Path,
    validate: Validator,
    report: Callable[[str], None],
) -> list[Trial]:
    """Quantize every plan in worker processes; validate each here as soon as it is written.

    A source given as a function is built here while the workers quantize from the others."""
    files = {plan: work / f"int8.{plan.name}.onnx" for plan in plans}
    keeps: dict[Int8Plan, list[str]] = {}
    futures: dict[Int8Plan, Future[None]] = {}
    # spawn, not fork: the exporting process holds PyTorch's thread pools
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers(), len(plans)), mp_context=context) as pool:
        # the graphs already on disk first: the workers start on them while this process builds
        for graph in sorted({p.graph for p in plans}, key=lambda g: not isinstance(sources[g], Path)):
            source = sources[graph]
            src = source if isinstance(source, Path) else source()
            for plan in (plan for plan in plans if plan.graph == graph):
                keeps[plan] = (
                    optimize.sensitive_matmuls(
                        src, edge_layers=plan.keep == "head+edges", ffn_out=plan.keep == "head+ffn-out"
                    )
                    if plan.keep
                    else []
                )
                futures[plan] = pool.submit(_quantize, plan, src, files[plan], keeps[plan])
        trials = {}
        for plan, future in futures.items():  # in the order submitted: the first done first
            future.result()  # a ConversionError raised in the worker is raised here
            report(f"int8 {plan.name}:")
            # the fusion check applies to graphs quantized from the fused one; the others have none
            variant, session = validate(files[plan], plan.graph == "fused")
            trials[plan] = Trial(plan, files[plan], variant, len(keeps[plan]), session)
    return [trials[plan] for plan in plans]


def choose(
    trials: Sequence[Trial],
    fp32_session: ort.InferenceSession,
    batches: Sequence[Batch],
    choice: Int8Choice,
    report: Callable[[str], None],
) -> tuple[Trial, Chosen]:
    """Time the candidates that pass parity beside fp32 (each as the server runs it) and pick one.

    budget: the fastest within the accuracy budget on the evaluation data, served by default; none
    within it: the most accurate, written but not served by default. fastest: the fastest that
    passes parity, served by default. accurate: the most accurate that passes, served by default."""
    passing = [trial for trial in trials if trial.variant.parity.passed]
    # none passes: the most accurate is written, marked refused; it is timed for the record
    timed = passing or [max(trials, key=lambda trial: _score(trial.variant))]
    one_by_one = speed.one_at_a_time(batches)
    runs = {"fp32": (fp32_session, speed.timing_batches(batches))} | {
        trial.plan.name: (trial.session, one_by_one) for trial in timed
    }
    # every session has run the validation set (the longest inputs among them): already warm
    speeds = speed.sequences_per_second(runs, rounds=2, warm_up=False)
    within = [trial for trial in passing if within_budget(trial.variant)]
    if choice == "fastest" and passing:
        chosen, default = max(passing, key=lambda trial: speeds[trial.plan.name]), True
    elif choice == "budget" and within:
        chosen, default = max(within, key=lambda trial: speeds[trial.plan.name]), True
    else:
        chosen = max(timed, key=lambda trial: _score(trial.variant))
        default = choice == "accurate" and chosen.variant.parity.passed
    for trial in trials:
        figure = f"{speeds[trial.plan.name]:.0f} seq/s" if trial.plan.name in speeds else "not timed"
        status = "passes" if trial.variant.parity.passed else "refused"
        if trial.variant.accuracy is not None:
            status += ", within budget" if trial.variant.accuracy.within_budget else ", outside budget"
        report(f"int8 {trial.plan.name}: {figure}, {status}" + (" <- written" if trial is chosen else ""))
    fp32_speed = speeds["fp32"]
    report(f"fp32 (fused): {fp32_speed:.0f} seq/s")
    if chosen.variant.parity.passed and speeds[chosen.plan.name] < fp32_speed:
        report("WARNING: the int8 graph written is slower than fp32 on this machine")
    if not default:
        why = "no candidate is within the accuracy budget" if choice == "budget" else "it failed parity"
        report(f"int8 is written but not served by default ({why}): BERTSERVE_PRECISION=auto serves fp32")
    candidates = [
        Int8Candidate(
            name=trial.plan.name,
            graph=trial.plan.graph,
            per_channel=trial.plan.per_channel,
            fp32_nodes=trial.fp32_nodes,
            sequences_per_second=round(speeds[trial.plan.name], 1) if trial.plan.name in speeds else None,
            parity=trial.variant.parity,
            accuracy=trial.variant.accuracy,
            chosen=trial is chosen,
        )
        for trial in trials
    ]
    variant = chosen.variant.model_copy(
        update={
            "sequences_per_second": round(speeds[chosen.plan.name], 1),
            "candidates": candidates,
            "default": default,
        }
    )
    return chosen, Chosen(variant, round(fp32_speed, 1))


def within_budget(variant: Variant) -> bool:
    return variant.accuracy is not None and variant.accuracy.within_budget


def _score(variant: Variant) -> tuple[bool, float, float, float]:
    """Most accurate first: passes parity, then agreement on the evaluation data, then on the samples."""
    parity = variant.parity
    real = variant.accuracy.agreement if variant.accuracy is not None else -1.0
    return parity.passed, real, parity.decision_agreement, -max(parity.max_abs_diff.values())
