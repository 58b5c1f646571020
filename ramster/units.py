"""Sizes as people write them: ``64MiB``, ``1GiB``, ``4096``, and as Kubernetes quantities
(``768Mi``, ``1Gi``, ``500M``), so a flag can hold what the manifest beside it holds; and a node's
budget as a share of a limit learnt only at start (``75%``); parsed once, at the edges."""

from __future__ import annotations

import re
from dataclasses import dataclass
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
MiB = 1 << 20
"""Bytes in a mebibyte: sizes shown to people are in MiB."""
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
SIZE_RULE = "a whole number of bytes such as 4096, 64MiB or 768Mi"
BUDGET_RULE = (
    f"{SIZE_RULE}, or a percentage of the memory limit above 0 and at most 100, such as 75%"
)


def parse_size(text: str, field: str = "size") -> int:
    """Bytes in `text`: a number with an optional unit, any case: B; K, KB, M, MB, G, GB, T, TB
    (powers of 1000); Ki, KiB, Mi, MiB, Gi, GiB, Ti, TiB (powers of 1024). A fraction of a byte
    is refused."""
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else ""
    # Exact decimal arithmetic: a float makes "2.01KB" 2009 bytes.
    nbytes = Fraction(match.group(1)) * _UNITS[unit] if match and unit in _UNITS else None
    if nbytes is None or nbytes.denominator != 1:
        raise InvalidArgument.field(field, text, SIZE_RULE)
    return int(nbytes)


@dataclass(frozen=True, slots=True)
class Share:
    """A budget given as a percentage of the memory limit the node finds at start (``75%``:
    `ramster.cgroup`), so a manifest states the limit once and the budget follows it.

    text: the percentage as given, for refusals.
    fraction: the share of the limit, in (0, 1].
    """

    text: str
    fraction: Fraction

    def of(self, limit: int | None, field: str = "memory") -> int:
        """Whole bytes of `limit` this share is (rounded down); `InvalidArgument` naming `field`
        and the percentage when there is no limit to take it of."""
        if limit is None:
            raise InvalidArgument.field(
                field,
                self.text,
                "a size such as 768MiB: a percentage takes a share of this process's memory "
                "limit, and its cgroup sets none (v2 memory.max, v1 memory.limit_in_bytes)",
            )
        return int(limit * self.fraction)


def parse_budget(text: str, field: str = "memory") -> int | Share:
    """A memory budget: bytes as `parse_size` reads them, or a percentage above 0 and at most
    100 (``75%``, ``62.5%``) of a limit to be found at start; `InvalidArgument` naming `field`."""
    match = _PERCENT.match(text)
    if match is None:
        try:
            return parse_size(text, field)
        except InvalidArgument:
            raise InvalidArgument.field(field, text, BUDGET_RULE) from None
    percent = Fraction(match.group(1))
    if not 0 < percent <= 100:
        raise InvalidArgument.field(field, text, BUDGET_RULE)
    return Share(text.strip(), percent / 100)


def format_size(nbytes: float) -> str:
    """`nbytes` with a binary unit, one decimal: ``1.5MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(nbytes) < 1024 or unit == "GiB":
            return f"{nbytes:.0f}{unit}" if unit == "B" else f"{nbytes:.1f}{unit}"
        nbytes /= 1024
    raise AssertionError("unreachable")
