"""Real sentences for the benchmark: SST-2 dev when the shared data is there, else the export samples."""

from __future__ import annotations

import csv
import os
from pathlib import Path


def data_dir() -> Path:
    return Path(os.environ.get("BERTSERVE_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))


def sentences(limit: int = 872) -> list[str]:
    """Mixed-length real sentences (SST-2 dev: 2 to 55 words)."""
    path = data_dir() / "sst2" / "dev.tsv"
    if path.is_file():
        with path.open(encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
        return [row["text_a"] for row in rows][:limit]
    from export.samples import SENTENCES

    return list(SENTENCES)[:limit]
