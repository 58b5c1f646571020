"""Helpers shared by integration tests, fault tests and benchmarks: processes we own."""
