"""Unit tests of ramster/rpc without a network: the peer link, the Tmem service's gets."""
