"""Printing benchmark tables and timing loops, shared by every benchmark section."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence


def rate(pages: int, work: Callable[[], object], min_seconds: float = 1.0) -> float:
    """Pages per second of `work` (which handles `pages` pages), repeated for `min_seconds`."""
    work()  # warm up caches and allocators
    runs, start = 0, time.perf_counter()
    while True:
        work()
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return pages * runs / elapsed


async def awaited_rate(
    pages: int, work: Callable[[], Awaitable[object]], min_seconds: float = 1.0
) -> float:
    """`rate` of an awaitable `work`: pages per second, repeated for `min_seconds`."""
    await work()  # warm up
    runs, start = 0, time.perf_counter()
    while True:
        await work()
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return pages * runs / elapsed


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(c) for c in header], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n## {title}\n")
    for n, row in enumerate(cells):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"
