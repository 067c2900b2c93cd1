"""Download the demo heads' evaluation data (their bertserve.json `eval_data`) from a base URL.

    python scripts/fetch_eval_data.py URL demo/ data/

For image builds without BuildKit's named contexts: the Dockerfile's export stage runs it when the
EVAL_DATA_URL build argument is set, so the export can score each variant on real data.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path


def wanted(demo_dir: Path) -> list[str]:
    """The eval_data paths the demo heads name, each once."""
    paths = []
    for spec in sorted(demo_dir.glob("*/bertserve.json")):
        path = json.loads(spec.read_text(encoding="utf-8")).get("eval_data")
        if path and path not in paths:
            paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("url", help="base URL the data folder is served at")
    cli.add_argument("demo_dir", type=Path)
    cli.add_argument("data_dir", type=Path)
    args = cli.parse_args(argv)
    for path in wanted(args.demo_dir):
        target = args.data_dir / path
        if not target.resolve().is_relative_to(args.data_dir.resolve()):
            print(f"skipped {path}: outside the data folder", file=sys.stderr)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        source = args.url.rstrip("/") + "/" + urllib.parse.quote(path)
        with urllib.request.urlopen(source, timeout=60) as response, target.open("wb") as out:
            shutil.copyfileobj(response, out)
        print(f"fetched {path} ({target.stat().st_size} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
