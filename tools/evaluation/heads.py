"""What to score: the demo heads and their dev sets, or any (model, checkpoint, data) given."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from export.errors import UsageError
from export.repository import read_spec
from tools.training.config import DATA_DIR_ENV


@dataclass(frozen=True)
class Target:
    """One head to score: its name in the model repository, the task, its checkpoint, its data file."""

    name: str
    task: str
    checkpoint: Path
    data: Path


@dataclass(frozen=True)
class DemoHead:
    folder: str  # under the demo folder
    task: str
    data: str  # under the data folder


DEMO_HEADS = (
    DemoHead("sst2-minilm", "classify", "sst2/dev.tsv"),
    DemoHead("mrpc-minilm", "pair", "mrpc/dev.tsv"),
    DemoHead("conll-minilm", "ner", "conll2003/valid.txt"),
    DemoHead("squad-minilm", "qa", "squad/dev.json"),
)


def demo_target(head: DemoHead, demo_dir: Path, data_dir: Path) -> Target | str:
    """The head's Target, or why it is skipped."""
    checkpoint = demo_dir / head.folder
    if not (checkpoint / "config.json").is_file():
        train = f"python -m tools.training --head {head.folder.split('-')[0]} --out {checkpoint}"
        return f"no checkpoint at {checkpoint} (train it: {train})"
    data = data_dir / head.data
    if not data.is_file():
        return f"no data at {data} (pass --data-dir or set {DATA_DIR_ENV})"
    try:
        spec = read_spec(checkpoint)
    except UsageError as error:
        return str(error)
    if spec.task != head.task:
        return f"{checkpoint} is a {spec.task} head, expected {head.task}"
    return Target(spec.name or head.folder, head.task, checkpoint, data)


def demo_targets(
    demo_dir: Path, data_dir: Path, only: set[str] | None = None
) -> tuple[list[Target], dict[str, str]]:
    """(the demo heads to score, {head: why skipped}); `only` restricts to those folder names."""
    targets: list[Target] = []
    skipped: dict[str, str] = {}
    for head in DEMO_HEADS:
        if only is not None and head.folder not in only:
            continue
        found = demo_target(head, demo_dir, data_dir)
        if isinstance(found, Target):
            targets.append(found)
        else:
            skipped[head.folder] = found
    return targets, skipped
