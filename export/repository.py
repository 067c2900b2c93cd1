"""Build the model repository from demo checkpoints: python -m export.repository --demo-dir demo --out models.

Each subfolder of --demo-dir with a config.json is a checkpoint; its `bertserve.json` says
{"task": ..., "name"?: ..., "precisions"?: [...], "eval_data"?: "sst2/dev.tsv", "eval_limit"?: N}
(eval_data: under --data-dir, scored as export --eval-data does). A model whose manifest already
records the same checkpoint fingerprint, task, precisions and evaluation data is skipped, so
`make serve` twice exports once.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.contract.checksum import sha256_of
from app.contract.manifest import Manifest, Precision, TaskName
from export import metadata
from export.accuracy import EvalOptions
from export.checkpoint import fingerprint
from export.errors import ExportError, UsageError
from export.int8 import Int8Choice
from export.options import PRECISIONS, add_int8_choice, add_precisions

SPEC_FILE = "bertserve.json"


class DemoSpec(BaseModel):
    """The `bertserve.json` beside a demo checkpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    task: TaskName
    name: str | None = None
    precisions: list[Precision] | None = None
    eval_data: str | None = None  # a file under the data folder, e.g. sst2/dev.tsv
    eval_limit: int | None = Field(None, ge=1)  # a seeded subset of that many examples


@dataclass
class RepositoryReport:
    exported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def checkpoints(demo_dir: Path) -> list[Path]:
    if not demo_dir.is_dir():
        return []
    return sorted(p for p in demo_dir.iterdir() if p.is_dir() and (p / "config.json").is_file())


def read_spec(folder: Path) -> DemoSpec:
    path = folder / SPEC_FILE
    if not path.is_file():
        raise UsageError(f'{folder} has no {SPEC_FILE}; add one such as {{"task": "classify"}}')
    try:
        return DemoSpec.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, ValidationError) as error:
        raise UsageError(f"{path} is invalid: {error}") from error


def up_to_date(
    model_dir: Path,
    checkpoint: Path,
    task: str,
    precisions: Sequence[Precision],
    evaluation: EvalOptions | None = None,
) -> bool:
    """The folder was exported from these very checkpoint files, for this task, with these variants,
    scored on this evaluation data, by this export recipe and these package versions (a new ONNX
    Runtime may fuse differently)."""
    try:
        manifest = Manifest.read(model_dir)
    except (OSError, ValueError):
        return False
    built = {v.precision: v for v in manifest.variants}
    return (
        same_evaluation(manifest, evaluation)
        and manifest.task == task
        and manifest.source.fingerprint == fingerprint(checkpoint)
        and manifest.versions == metadata.versions()
        and all(p in built for p in precisions)
        and all(
            (model_dir / v.file).is_file() and (model_dir / v.file).stat().st_size == v.size_bytes
            for v in built.values()
        )
    )


def same_evaluation(manifest: Manifest, evaluation: EvalOptions | None) -> bool:
    """The manifest records a scoring on this very data (file contents, subset) and budget."""
    data = manifest.evaluation
    if evaluation is None or data is None:
        return evaluation is None and data is None
    try:
        digest = sha256_of(evaluation.data)
    except OSError:
        return False
    wanted = data.total if evaluation.limit is None else min(evaluation.limit, data.total)
    return (
        data.sha256 == digest
        and data.examples == wanted
        and data.seed == evaluation.seed
        and manifest.budget == evaluation.budget
    )


def evaluation_for(spec: DemoSpec, data_dir: Path | None, say: Callable[[str], None]) -> EvalOptions | None:
    """The demo head's evaluation data under `data_dir`, or None (said why) when it is not there."""
    if spec.eval_data is None:
        return None
    if data_dir is None or not (data_dir / spec.eval_data).is_file():
        say(
            f"WARNING: no evaluation data {spec.eval_data} under {data_dir} (--data-dir): int8 is written "
            "but not served by default"
        )
        return None
    return EvalOptions(data_dir / spec.eval_data, spec.eval_limit, name=spec.eval_data)


def _prefixed(progress: Callable[[str], None], name: str) -> Callable[[str], None]:
    def report(line: str) -> None:
        progress(f"{name}: {line}")

    return report


def build_repository(
    demo_dir: Path,
    out: Path,
    precisions: Sequence[Precision] = PRECISIONS,
    *,
    progress: Callable[[str], None] = print,
    int8_choice: Int8Choice = "budget",
    data_dir: Path | None = None,
) -> RepositoryReport:
    """Export every demo checkpoint that is not up to date; failures are collected, not raised."""
    from export.pipeline import export_model

    report = RepositoryReport()
    for folder in checkpoints(demo_dir):
        try:
            spec = read_spec(folder)
            name = spec.name or folder.name
            wanted = spec.precisions or list(precisions)
            evaluation = evaluation_for(spec, data_dir, _prefixed(progress, name))
            if up_to_date(out / name, folder, spec.task, wanted, evaluation):
                progress(f"{name}: up to date ({folder}), skipped")
                report.skipped.append(name)
                continue
            progress(f"{name}: exporting {folder} as {spec.task} ({','.join(wanted)})")
            export_model(
                str(folder),
                spec.task,
                out / name,
                precisions=wanted,
                force=True,
                name=name,
                progress=_prefixed(progress, name),
                int8_choice=int8_choice,
                evaluation=evaluation,
            )
            report.exported.append(name)
        except ExportError as error:
            progress(f"error: {folder.name}: {error}")
            report.failed[folder.name] = str(error)
    return report


def main(argv: Sequence[str] | None = None, prog: str = "python -m export.repository") -> int:
    cli = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    cli.add_argument("--demo-dir", type=Path, required=True, help="folder of demo checkpoints")
    cli.add_argument("--out", type=Path, required=True, help="the model repository, e.g. models")
    add_precisions(cli, "for checkpoints whose bertserve.json does not say")
    add_int8_choice(cli)
    cli.add_argument(
        "--data-dir", type=Path, help="where the demo heads' eval_data lives (e.g. ../shared/data)"
    )
    args = cli.parse_args(argv)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if not checkpoints(args.demo_dir):
        say(f"no demo checkpoints yet in {args.demo_dir} (a subfolder with config.json and {SPEC_FILE})")
        return 0
    report = build_repository(
        args.demo_dir,
        args.out,
        args.precisions,
        progress=say,
        int8_choice=args.int8_choice,
        data_dir=args.data_dir,
    )
    say(
        f"model repository {args.out}: {len(report.exported)} exported, {len(report.skipped)} up to date, "
        f"{len(report.failed)} failed"
    )
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
