"""Integration tests: real `ramster node` processes on loopback.

Fixtures in tests/conftest.py, helpers in tests/support.
"""
