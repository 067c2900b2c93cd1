"""Real texts for the benchmark: SST-2 dev sentences, and a mixed-length corpus built from them.

Both read ../shared/data (BERTSERVE_DATA_DIR); without it, the export's sample sentences.
"""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path


def data_dir() -> Path:
    return Path(os.environ.get("BERTSERVE_DATA_DIR", Path(__file__).resolve().parents[3] / "shared" / "data"))


def sentences(limit: int = 872) -> list[str]:
    """Mixed-length real sentences (SST-2 dev: 2 to 55 words)."""
    path = data_dir() / "sst2" / "dev.tsv"
    if path.is_file():
        with path.open(encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
        return [row["text_a"] for row in rows][:limit]
    from export.samples import SENTENCES

    return list(SENTENCES)[:limit]


def mixed_lengths(count: int = 512, shortest: int = 5, longest: int = 60, seed: int = 0) -> list[str]:
    """`count` texts of `shortest` to `longest` words (uniform), cut from the sentences run together."""
    words = " ".join(sentences()).split()
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        length = rng.randint(shortest, longest)
        start = rng.randrange(0, max(1, len(words) - length))
        texts.append(" ".join((words * 2)[start : start + length]))
    return texts
