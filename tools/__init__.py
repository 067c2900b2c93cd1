"""The tools beside the product: benchmarks and the stress run (bench), the evaluation of the
served heads (evaluation), and the fine-tuning of the demo heads (training)."""
