"""Benchmarks: ratio tables measured in one run, never timed assertions (BENCHMARKS.md)."""
