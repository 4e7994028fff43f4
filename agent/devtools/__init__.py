"""Helpers for tests, benchmarks and the demo; never used by the agent at run time."""
