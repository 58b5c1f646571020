"""Unit tests of ramster/client without a node: configuration, checks, coalescing."""
