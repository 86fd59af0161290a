"""Benchmarks of edge-dfd: run each from the repository root as ``python -m benchmarks.NAME`` (see common.py)."""
