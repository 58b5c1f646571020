"""Printing benchmark tables and timing loops, shared by every benchmark section."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass


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


ROUNDS = 7
"""Rounds of `interleaved_rates`."""


@dataclass(frozen=True)
class Rates:
    """Pages per second of one work in each round of `interleaved_rates`."""

    rounds: tuple[float, ...]

    @property
    def best(self) -> float:
        """The best round: the one least disturbed by other work on the machine."""
        return max(self.rounds)

    @property
    def median(self) -> float:
        return statistics.median(self.rounds)

    def beside(self, other: Rates) -> float:
        """These rates as a multiple of `other`'s, measured in the same rounds: the median of
        the rounds' ratios, each of two measures taken one right after the other."""
        return statistics.median(
            mine / theirs for mine, theirs in zip(self.rounds, other.rounds, strict=True)
        )


async def interleaved_rates(
    pages: int, works: Mapping[str, Callable[[], Awaitable[object]]], rounds: int = ROUNDS
) -> dict[str, Rates]:
    """The rates of `works` (each handles `pages` pages) measured in turn: after a warm-up of
    each, `rounds` rounds running each once, in reverse order every other round. Works compared
    so meet the same moments of a shared machine's load, where one measured after the other
    would meet another moment of it (and the order no advantage)."""
    for work in works.values():
        await work()  # warm up
    names = list(works)
    measured: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else reversed(names):
            start = time.perf_counter()
            await works[name]()
            measured[name].append(pages / (time.perf_counter() - start))
    return {name: Rates(tuple(measured[name])) for name in names}


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
