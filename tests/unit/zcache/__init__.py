"""Unit tests of ramster/zcache: the compressed page store on its own."""
