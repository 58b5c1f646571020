"""Unit tests of ramster/tmem: the host, its model, copies and shipping in the pure core."""
