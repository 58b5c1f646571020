"""Sizes as people write them: ``64MiB``, ``1GiB``, ``4096``, and as Kubernetes quantities
(``768Mi``, ``1Gi``, ``500M``), so a flag can hold what the manifest beside it holds; parsed
once, at the edges."""

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
    "ki": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "mi": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "gi": 1024**3,
    "t": 1000**4,
    "tb": 1000**4,
    "tib": 1024**4,
    "ti": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str, field: str = "size") -> int:
    """Bytes in `text`: a number with an optional unit, any case: B; K, KB, M, MB, G, GB, T, TB
    (powers of 1000); Ki, KiB, Mi, MiB, Gi, GiB, Ti, TiB (powers of 1024). A fraction of a byte
    is refused."""
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else ""
    # Exact decimal arithmetic: a float makes "2.01KB" 2009 bytes.
    nbytes = Fraction(match.group(1)) * _UNITS[unit] if match and unit in _UNITS else None
    if nbytes is None or nbytes.denominator != 1:
        raise InvalidArgument.field(
            field, text, "a whole number of bytes such as 4096, 64MiB or 768Mi"
        )
    return int(nbytes)


def format_size(nbytes: float) -> str:
    """`nbytes` with a binary unit, one decimal: ``1.5MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(nbytes) < 1024 or unit == "GiB":
            return f"{nbytes:.0f}{unit}" if unit == "B" else f"{nbytes:.1f}{unit}"
        nbytes /= 1024
    raise AssertionError("unreachable")
