"""Integration tests: real `ramster node` processes on loopback (see conftest.py)."""
