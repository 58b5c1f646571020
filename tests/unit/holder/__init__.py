"""Unit tests of ramster/holder: pages held for other nodes, origins' epochs."""
