"""Checkpoint -> fused, validated ONNX model folder for bertserve (`python -m export --help`)."""
