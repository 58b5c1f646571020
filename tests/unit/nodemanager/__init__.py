"""Unit tests of nodemanager/: membership's pure parts."""
