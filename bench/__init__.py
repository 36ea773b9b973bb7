"""Benchmarks that run the real service (`python -m bench.<name>`); see docs/benchmarks.md."""
