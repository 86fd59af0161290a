"""One-off tools (weight ports, the PyTorch fine-tune): run from the repository root as ``python -m tools.NAME``."""
