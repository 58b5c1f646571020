"""Unit tests: one folder per package of ramster/ (and nodemanager/); plain objects, no
processes.
"""
