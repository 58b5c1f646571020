"""Sizes as people write them: ``64MiB``, ``1GiB``, ``4096``; parsed once, at the edges."""

from __future__ import annotations

import re
from fractions import Fraction

from ramster.errors import InvalidArgument

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1000**4,
    "tb": 1000**4,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str, field: str = "size") -> int:
    """Bytes in `text`: a number with an optional unit (B, KB, KiB, MB, MiB, GB, GiB, TB, TiB)."""
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise InvalidArgument.field(field, text, "a size such as 4096, 64MiB or 1GiB")
    # Exact decimal arithmetic: a float makes "2.01KB" 2009 bytes.
    return int(Fraction(match.group(1)) * _UNITS[unit])


def format_size(nbytes: float) -> str:
    """`nbytes` with a binary unit, one decimal: ``1.5MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(nbytes) < 1024 or unit == "GiB":
            return f"{nbytes:.0f}{unit}" if unit == "B" else f"{nbytes:.1f}{unit}"
        nbytes /= 1024
    raise AssertionError("unreachable")
