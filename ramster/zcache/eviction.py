"""The eviction rule shared by every page store (docs/design.md §4, reference §A4.5).

Only ephemeral pages are evicted, oldest put first. A put that would not fit even after every
ephemeral page were gone is refused at once and evicts nothing: persistent pages are never
evicted, and a persistent put that cannot be placed never waits.
"""

from __future__ import annotations

from collections.abc import Callable


def evict_for(
    need: int, evictable: int, evict_oldest: Callable[[], tuple[int, int]]
) -> list[int] | None:
    """Evict until `need` bytes are free; the evicted backrefs, or None if it cannot be done.

    `evictable` is what evicting every ephemeral page would free; `evict_oldest` evicts the
    oldest ephemeral page and returns (backref, bytes freed).
    """
    if need > evictable:
        return None
    evicted = []
    while need > 0:
        backref, freed = evict_oldest()
        evicted.append(backref)
        need -= freed
    return evicted
