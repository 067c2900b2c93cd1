"""export_model: checkpoint -> validated, fused ONNX model folder (the programmatic API behind the CLI)."""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, get_args

from app.contract.checksum import sha256_of
from app.contract.manifest import (
    TOKENIZER_FILE,
    Accuracy,
    Manifest,
    Parity,
    Precision,
    Source,
    TaskName,
    Variant,
)
from app.runtime.providers import CPU, CUDA
from export import accuracy, int8, metadata, optimize, validate
from export import checkpoint as ckpt
from export.architectures import Architecture
from export.errors import ParityError, UsageError
from export.fusion import verify_fusion
from export.int8 import Int8Choice
from export.progress import Progress
from export.staging import check_destination, staged_folder
from export.tasks import TASKS, TaskSpec
from export.tokenizer_file import check_tokenizer, save_tokenizer
from export.tolerances import DEFAULT_TOLERANCES, Tolerance, violations

if TYPE_CHECKING:
    import onnxruntime as ort
    import torch


PROVIDERS: dict[Precision, list[str]] = {
    "fp32": [CUDA, CPU],
    "fp16": [CUDA],
    "int8": [CPU],
}


@dataclass(frozen=True)
class _Context:
    """What every variant is validated against."""

    spec: TaskSpec
    architecture: Architecture
    layers: int
    heads: int
    hidden: int
    batches: list[validate.Batch]
    reference: list[validate.Outputs]
    tolerances: Mapping[Precision, Tolerance]
    progress: Progress
    manifest: Manifest  # everything but the variants
    scorer: accuracy.Scorer | None  # the evaluation data, when given


def export_model(
    model: str,
    task: TaskName,
    out: Path,
    *,
    precisions: Sequence[Precision] = ("fp32", "fp16", "int8"),
    max_length: int | None = None,
    opset: int = 17,
    force: bool = False,
    name: str | None = None,
    progress: Callable[[str], None] | None = None,
    tolerances: Mapping[Precision, Tolerance] | None = None,
    strict: bool = False,
    int8_choice: Int8Choice = "budget",
    evaluation: accuracy.EvalOptions | None = None,
) -> Manifest:
    """Export `model` (folder or hub id) for `task` into the model folder `out`, atomically.

    fp32 is always built and validated (the others derive from it) but written only if asked.
    A fp16/int8 variant over tolerance is recorded with passed=false (the server skips it);
    with `strict` it fails the export instead. With `evaluation`, every variant and int8 candidate is
    also scored on labelled data against PyTorch fp32; `int8_choice` picks the int8 graph written and
    whether it is served by default (int8.choose). Raises an ExportError subclass on any failure,
    leaving no `out` behind.
    """
    report = Progress(progress)
    wanted = _check_options(task, precisions, opset)
    spec = TASKS[task]
    table = {**DEFAULT_TOLERANCES, **(tolerances or {})}
    check_destination(out, force=force)

    with report.stage("checkpoint"):
        path, source = ckpt.locate(model)
        checkpoint = ckpt.inspect_checkpoint(path, source, spec)
        tokenizer = ckpt.load_tokenizer(checkpoint)
        torch_model = ckpt.load_torch_model(checkpoint, spec)
        config = checkpoint.config
        architecture = checkpoint.architecture
        head = spec.head_for(checkpoint.model_type)
        loaded = torch_model.config  # defaults filled in for keys config.json leaves out
        layers, hidden, heads = loaded.num_hidden_layers, loaded.hidden_size, loaded.num_attention_heads
        length = metadata.max_length(
            config, tokenizer, max_length, position_offset=architecture.position_offset
        )
        report(
            f"{source}: {checkpoint.declared or 'no architectures'} as {head}, "
            f"{layers} layers, hidden {hidden}, {heads} heads, max length {length}"
        )
        if not checkpoint.trained_head:
            report(f"WARNING: {source} has no fine-tuned head; the {head} head is randomly initialised")

    with staged_folder(out, force=force) as folder:
        work = folder / ".work"
        work.mkdir()
        with report.stage("convert to ONNX"):
            from export.convert import to_onnx

            input_names = to_onnx(torch_model, spec, work / "raw.onnx", opset=opset)
        with report.stage("tokenizer"):
            save_tokenizer(tokenizer, folder / TOKENIZER_FILE)
            check_tokenizer(folder / TOKENIZER_FILE, tokenizer, validate.validation_inputs(spec)[:-1])
        described = Manifest(
            name=name or out.name,
            task=task,
            architecture=head,
            model_type=checkpoint.model_type,
            num_layers=layers,
            hidden_size=hidden,
            num_heads=heads,
            id2label=metadata.id2label(loaded.id2label or {}) if spec.labelled else {},
            problem_type=loaded.problem_type,
            input_names=input_names,
            output_names=list(spec.outputs),
            max_length=length,
            pad_token_id=metadata.pad_token_id(config, tokenizer),
            special_tokens=metadata.special_tokens(tokenizer),
            fusions=[requirement.label for requirement in architecture.fusions],
            opset=opset,
            variants=[],
            source=Source(
                checkpoint=source,
                architecture=checkpoint.declared or head,
                fingerprint=ckpt.fingerprint(path),
            ),
            versions=metadata.versions(),
            created_at=metadata.now(),
        )
        scorer = None
        if evaluation is not None:
            with report.stage("evaluation data (PyTorch fp32)"):
                scorer = _scorer(
                    described,
                    spec,
                    evaluation,
                    tokenizer=folder / TOKENIZER_FILE,
                    model=torch_model,
                    report=report,
                )
        with report.stage("reference outputs (PyTorch fp32)"):
            batches = validate.encode(tokenizer, spec, length, input_names)
            reference = validate.torch_outputs(torch_model, spec, batches)
            context = _Context(
                spec,
                architecture,
                layers,
                heads,
                hidden,
                batches,
                reference,
                table,
                report,
                described,
                scorer,
            )
        fp32_file = (folder if "fp32" in wanted else work) / "model.fp32.onnx"
        with report.stage("fuse"):
            optimize.fuse(work / "raw.onnx", fp32_file, num_heads=heads, hidden_size=hidden)
        variants = _variants(context, wanted, fp32_file, folder, int8_choice=int8_choice)
        _refuse_failures(variants, strict)
        shutil.rmtree(work)
        manifest = described.model_copy(
            update={
                "variants": [variant for variant in variants if variant.precision in wanted],
                "evaluation": scorer.eval_set.data if scorer else None,
                "budget": scorer.budget if scorer else None,
            }
        )
        manifest.write(folder)
    report(f"wrote {out} ({', '.join(_summary(v) for v in manifest.variants)})")
    return manifest


def _scorer(
    described: Manifest,
    spec: TaskSpec,
    evaluation: accuracy.EvalOptions,
    *,
    tokenizer: Path,
    model: torch.nn.Module,
    report: Progress,
) -> accuracy.Scorer:
    """Read the evaluation data, tokenize it as the server would (with the tokenizer file written
    into the model folder), and answer it with PyTorch fp32."""
    eval_set = accuracy.read_eval_set(evaluation, spec, described)
    scorer = accuracy.Scorer.prepare(eval_set, described, tokenizer, evaluation.budget)
    scorer.set_reference(accuracy.torch_backend(model, spec, described))
    figures = ", ".join(f"{metric} {value:.2f}" for metric, value in scorer.reference_metrics.items())
    report(
        f"{eval_set.data.name}: {eval_set.data.examples} of {eval_set.data.total} examples "
        f"({len(scorer.items)} sequences)" + (f"; PyTorch fp32 {figures}" if figures else "; no gold answers")
    )
    return scorer


def _check_options(task: str, precisions: Sequence[str], opset: int) -> list[Precision]:
    if task not in TASKS:
        raise UsageError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    known = get_args(Precision)
    unknown = [p for p in precisions if p not in known]
    if unknown or not precisions:
        raise UsageError(
            f"precisions must be a non-empty subset of {', '.join(known)} (got {list(precisions)})"
        )
    if not 14 <= opset <= 21:
        raise UsageError(f"--opset {opset} is unsupported; the fused graph needs 14..21 (17 recommended)")
    return [p for p in known if p in precisions]


def _variants(
    context: _Context, wanted: Sequence[Precision], fp32_file: Path, folder: Path, *, int8_choice: Int8Choice
) -> list[Variant]:
    """Validate the fused fp32 graph and build, validate (and for int8 choose) the others."""
    fp32_variant, fp32_session = _validate(context, "fp32", fp32_file, verify=True)
    variants = [fp32_variant]
    if "fp16" in wanted:
        with context.progress.stage("fp16"):
            optimize.to_fp16(fp32_file, folder / "model.fp16.onnx")
            variants.append(_accept(context, "fp16", folder / "model.fp16.onnx"))
    if "int8" in wanted:
        with context.progress.stage("int8"):
            work = folder / ".work"
            sources = _int8_sources(fp32_file, work, num_heads=context.heads, hidden_size=context.hidden)
            int8_variant, fp32_speed = _int8(
                context, sources, fp32_session, folder / "model.int8.onnx", work, choice=int8_choice
            )
            fp32_variant = fp32_variant.model_copy(update={"sequences_per_second": fp32_speed})
            variants = [fp32_variant, *variants[1:], int8_variant]
    return variants


def _accept(context: _Context, precision: Precision, file: Path) -> Variant:
    """Verify fusion, measure parity and describe the variant; fp32 over tolerance is fatal."""
    return _validate(context, precision, file, verify=True)[0]


def _validate(
    context: _Context, precision: Precision, file: Path, *, verify: bool
) -> tuple[Variant, ort.InferenceSession]:
    """As _accept (fusion checked only with `verify`), also returning the session that measured it."""
    stats = optimize.graph_stats(file)
    architecture = context.architecture
    if verify:
        verify_fusion(
            stats.fused_ops, context.layers, f"{precision} graph", architecture.fusions, architecture.family
        )
    session, provider = validate.open_session(file, prefer_cuda=precision == "fp16")
    # dynamic int8 scales activations over the whole tensor: the server runs it one sequence at a time
    batch_dependent = precision == "int8"
    candidate = validate.onnx_outputs(session, context.spec, context.batches, per_sequence=batch_dependent)
    tolerance = context.tolerances[precision]
    parity = validate.parity(
        context.spec, context.batches, context.reference, candidate, tolerance=tolerance, provider=provider
    )
    context.progress(f"{precision} on {provider}: {_figures(parity)}")
    problems = violations(parity.max_abs_diff, parity.decision_agreement, parity.atol, parity.min_agreement)
    if problems:
        context.progress(f"!!! {precision} REFUSED: {'; '.join(problems)}")
        if precision == "fp32":
            raise ParityError(f"the fused fp32 graph does not match PyTorch: {'; '.join(problems)}")
    variant = Variant(
        precision=precision,
        file=file.name,
        providers=PROVIDERS[precision],
        fused_ops=stats.fused_ops,
        node_count=stats.node_count,
        size_bytes=file.stat().st_size,
        sha256=sha256_of(file),
        parity=parity,
        batch_dependent=batch_dependent,
        accuracy=_accuracy(context, precision, session, provider, batch_dependent) if parity.passed else None,
    )
    return variant, session


def _accuracy(
    context: _Context,
    precision: Precision,
    session: ort.InferenceSession,
    provider: str,
    batch_dependent: bool,
) -> Accuracy | None:
    """The variant's answers on the evaluation data (fp16 only where it runs: on CUDA)."""
    if context.scorer is None or (precision == "fp16" and provider != CUDA):
        return None
    run = accuracy.onnx_backend(session, context.manifest, per_sequence=batch_dependent)
    measured = context.scorer.accuracy(run)
    context.progress(f"{precision}: {accuracy.describe(measured, context.scorer.budget)}")
    return measured


def _int8_sources(
    fp32: Path, work: Path, *, num_heads: int, hidden_size: int
) -> dict[int8.Graph, Path | Callable[[], Path]]:
    """The graphs int8 candidates are quantized from: the fused fp32 graph, the plain export, and a
    partly fused one (attention left unfused), built once when first wanted."""
    raw, partial = work / "raw.onnx", work / "partial.onnx"

    @functools.cache
    def build_partial() -> Path:
        optimize.fuse(raw, partial, num_heads=num_heads, hidden_size=hidden_size, attention=False)
        return partial

    return {"fused": fp32, "partial": build_partial, "unfused": raw}


def _int8(
    context: _Context,
    sources: Mapping[int8.Graph, Path | Callable[[], Path]],
    fp32_session: ort.InferenceSession,
    dst: Path,
    work: Path,
    *,
    choice: Int8Choice,
) -> tuple[Variant, float]:
    """Build the int8 candidates, validate, score and time them; write the one `choice` picks
    (int8.choose). Returns the variant, with every candidate's figures, and the fp32 graph's speed."""

    def check(file: Path, verify: bool) -> tuple[Variant, ort.InferenceSession]:
        return _validate(context, "int8", file, verify=verify)

    trials = int8.build_trials(int8.FULL_INT8, sources, work, check, context.progress)
    budgeted = choice == "budget" and context.scorer is not None
    if not any(int8.within_budget(t.variant) if budgeted else t.variant.parity.passed for t in trials):
        what = "is within the accuracy budget" if budgeted else "passes"
        context.progress(f"int8: no fully quantized graph {what}; trying partial quantization")
        trials += int8.build_trials(int8.PARTIAL_INT8, sources, work, check, context.progress)
    trial, chosen = int8.choose(trials, fp32_session, context.batches, choice, context.progress)
    trial.file.rename(dst)
    return chosen.variant.model_copy(update={"file": dst.name}), chosen.fp32_speed


def _refuse_failures(variants: list[Variant], strict: bool) -> None:
    failed = [v.precision for v in variants if not v.parity.passed]
    if failed and strict:
        raise ParityError(f"variants over tolerance: {', '.join(failed)} (--strict)")


def _figures(parity: Parity) -> str:
    diffs = ", ".join(f"{name} {diff:.2e}" for name, diff in parity.max_abs_diff.items())
    return (
        f"max|diff| {diffs} (bound {parity.atol:.2e}); agreement {parity.decision_agreement:.1%} "
        f"over {parity.samples} inputs"
    )


def _summary(variant: Variant) -> str:
    return f"{variant.precision} {'ok' if variant.parity.passed else 'REFUSED'}"
