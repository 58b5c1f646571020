"""Fault tests (DESIGN §11): partitions, slow peers, kill -9, drain, chaos and fuzzing of real
nodes.
"""
