"""Unit tests of ramster/cli without a node: the extras a command needs."""
