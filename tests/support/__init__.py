"""Helpers shared by test modules and benchmarks: processes we own (nodes, etcd, proxies,
network namespaces), clusters of real nodes, and pure-core builders for unit tests.

A test module imports helpers from here, never from another test module or a conftest.
"""
