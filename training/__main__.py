"""Entry point: `python -m training --head sst2 --out demo/sst2-minilm`."""

from training.cli import main

raise SystemExit(main())
