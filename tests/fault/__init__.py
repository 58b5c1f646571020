"""Fault tests (docs/design.md §11): partitions, slow peers, kill -9, drain, chaos and fuzzing of
real nodes.
"""
