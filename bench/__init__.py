"""Benchmarks: ``python -m bench.<name>`` from the repository root. Not part of the test suite."""
