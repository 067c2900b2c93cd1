"""Keep in a model repository only the variants an image serves with BERTSERVE_PRECISION=auto.

    PYTHONPATH=. python scripts/serving_variants.py --runtime cpu models/

The Dockerfile's export stage runs it (unless PRECISIONS is given): per model, the first validated variant
in the server's own auto order (app.runtime.repository.precision_order): on cpu int8 where the export
serves it by default (within its accuracy budget), else fp32; on gpu fp16
for CUDA plus int8/fp32 for a CPU fallback. Every other variant file (refused ones too) is deleted and the
manifest lists only what stays, so `BERTSERVE_PRECISION=<a removed one>` fails with a clear message.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from app.contract.manifest import MANIFEST_FILE, Manifest
from app.runtime.repository import precision_order
from app.settings import Settings

PROVIDERS = {"cpu": (False,), "gpu": (True, False)}  # on_cuda for each provider the image may run on


def serving_precisions(manifest: Manifest, runtime: str) -> list[str]:
    """The precisions auto picks for this model on each provider the runtime may use, in that order."""
    settings = Settings(precision="auto")
    kept: list[str] = []
    for on_cuda in PROVIDERS[runtime]:
        order = precision_order(settings, on_cuda)
        chosen = next((p for p in order if manifest.variant(p, by_default=True) is not None), None)
        if chosen is None:
            raise SystemExit(f"{manifest.name}: no validated variant among {order}")
        if chosen not in kept:
            kept.append(chosen)
    return kept


def prune(folder: Path, runtime: str) -> tuple[list[str], int]:
    """Delete the variants `folder` does not serve; returns (kept precisions, bytes freed)."""
    manifest = Manifest.read(folder)
    kept = serving_precisions(manifest, runtime)
    freed = 0
    for variant in manifest.variants:
        if variant.precision in kept and variant.parity.passed:
            continue
        path = folder / variant.file
        if path.exists():
            freed += path.stat().st_size
            path.unlink()
    served = [v for v in manifest.variants if v.precision in kept and v.parity.passed]
    manifest.model_copy(update={"variants": served}).write(folder)
    return kept, freed


def main(argv: Sequence[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--runtime", choices=sorted(PROVIDERS), required=True)
    cli.add_argument("repository", type=Path)
    args = cli.parse_args(argv)
    folders = sorted(p.parent for p in args.repository.glob(f"*/{MANIFEST_FILE}"))
    if not folders:
        print(f"no models in {args.repository}", file=sys.stderr)
        return 1
    for folder in folders:
        kept, freed = prune(folder, args.runtime)
        print(f"{folder.name}: keeps {','.join(kept)} for {args.runtime}, {freed / 1e6:.0f} MB removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
