"""Unit tests of ramster/frontends: cleancache, frontswap, self-shrinking and the shims."""
