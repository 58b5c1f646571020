"""Unit tests of ramster/rpc without a network: the peer link, the Tmem service's gets, who a
caller is (certificates, tokens) and what each role may call."""
