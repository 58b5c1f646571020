"""Unit tests of ramster/remote: the async remote layer over fake peers."""
