"""Unit tests of ramster/trust: identities, the CA and its certificates, tokens, page seals."""
