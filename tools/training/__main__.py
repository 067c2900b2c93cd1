"""Entry point: `python -m tools.training --head sst2 --out demo/sst2-minilm`."""

from tools.training.cli import main

raise SystemExit(main())
