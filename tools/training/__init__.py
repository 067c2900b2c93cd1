"""Fine-tune the pretrained MiniLM encoder into the four demo heads (`python -m tools.training --help`)."""
