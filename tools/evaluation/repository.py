"""The model repository: build it (export.repository) when a head is missing or stale, read manifests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from app.contract.manifest import Manifest, Precision
from export.evaluation.tasks import ModelInfo
from export.repository import build_repository, evaluation_for, read_spec, up_to_date
from export.tolerances import violations
from tools.evaluation.goals import AUTO
from tools.evaluation.heads import Target


class EvaluationError(RuntimeError):
    """A target cannot be scored (say, its model is not in the repository)."""


def ensure_built(
    targets: Sequence[Target],
    demo_dir: Path,
    models_dir: Path,
    precisions: Sequence[Precision],
    say: Callable[[str], None],
    *,
    data_dir: Path | None = None,
) -> list[str]:
    """Export what `make models` would (scored on the demo heads' data under `data_dir`); returns
    the heads still unusable afterwards (with why)."""

    def current(target: Target) -> bool:
        evaluation = evaluation_for(read_spec(target.checkpoint), data_dir, say)
        return up_to_date(models_dir / target.name, target.checkpoint, target.task, precisions, evaluation)

    stale = [t for t in targets if not current(t)]
    if not stale:
        return []
    say(
        f"{models_dir}: {', '.join(t.name for t in stale)} missing or stale; building the repository "
        f"(bertserve models --demo-dir {demo_dir} --out {models_dir}; `make models` does the same)"
    )
    report = build_repository(demo_dir, models_dir, progress=say, data_dir=data_dir)
    return [
        f"{t.name}: export failed: {report.failed[t.checkpoint.name]}"
        if t.checkpoint.name in report.failed
        else f"{t.name}: still not in {models_dir} with {','.join(precisions)}; run `make models`"
        for t in stale
        if not current(t)
    ]


def read_manifest(models_dir: Path, name: str) -> Manifest:
    folder = models_dir / name
    try:
        return Manifest.read(folder)
    except (OSError, ValueError) as error:
        raise EvaluationError(
            f"{name}: no usable model in {folder} ({error}); build the repository first: make models"
        ) from error


def model_info(models_dir: Path, name: str) -> ModelInfo:
    manifest = read_manifest(models_dir, name)
    return ModelInfo(max_length=manifest.max_length, id2label=dict(manifest.id2label))


def unservable(models_dir: Path, name: str, precision: str) -> str | None:
    """Why the server would not load `name` at `precision` (None when it would; auto always has
    a variant to serve once the export succeeded)."""
    manifest = read_manifest(models_dir, name)
    if precision == AUTO:
        return None
    built = next((v for v in manifest.variants if v.precision == precision), None)
    if built is None:
        return f"no {precision} variant in {models_dir / name} (export it: make models)"
    if built.parity.passed:
        return None
    p = built.parity
    problems = "; ".join(violations(p.max_abs_diff, p.decision_agreement, p.atol, p.min_agreement))
    return f"the export refused its {precision} variant ({problems}), so the server does not load it"
