"""Unit tests of ramster/wire: what both ends of a call share."""
