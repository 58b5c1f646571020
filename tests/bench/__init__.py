"""Benchmarks, run by ``make bench``: each prints a table beside its reference in the same run."""
