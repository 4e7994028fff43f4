"""Benchmarks: performance lives here, not in timed tests."""
