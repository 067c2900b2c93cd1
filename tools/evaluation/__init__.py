"""Score the served heads on their dev sets beside `transformers.pipeline`: `python -m tools.evaluation`."""
