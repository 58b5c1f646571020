"""Workloads that exercise RAMster with real data: a corpus of memory pages and the demo."""
