"""Put order of one class of pages, oldest first, as zbud keeps it (reference §A4.4).

Like the kernel's LRU, a page moves to the young end only when it is put, never when it is
read. Entries are (slot, version) in two flat arrays, 12 bytes a page; a freed page is not
searched for but skipped when it reaches the old end (its slot is free, or holds a page of
another version). The arrays are compacted once the consumed head outgrows the rest, and by
`compact` when the owner sees stale entries outnumber live ones.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable


class PutOrder:
    """Slots in the order their pages were put, with lazy removal."""

    __slots__ = ("_head", "_slots", "_versions")

    def __init__(self) -> None:
        self._slots = array("I")
        self._versions = array("Q")
        self._head = 0

    def __len__(self) -> int:
        """Entries not yet consumed, stale ones included."""
        return len(self._slots) - self._head

    def __repr__(self) -> str:
        return f"<PutOrder entries={len(self)}>"

    def push(self, slot: int, version: int) -> int:
        """Append a page; return the entries now held (stale ones included)."""
        self._slots.append(slot)
        self._versions.append(version)
        return len(self._slots) - self._head

    def pop_oldest(self, holds: Callable[[int, int], bool]) -> int:
        """Consume entries until one whose page still `holds(slot, version)`; -1 if none."""
        slots, versions = self._slots, self._versions
        head, end = self._head, len(slots)
        found = -1
        while head < end:
            slot, version = slots[head], versions[head]
            head += 1
            if holds(slot, version):
                found = slot
                break
        self._head = head
        if head > 1024 and head * 2 > end:
            del slots[:head]
            del versions[:head]
            self._head = 0
        return found

    def compact(self, holds: Callable[[int, int], bool]) -> None:
        """Drop every entry whose page no longer `holds(slot, version)`, keeping the order."""
        pairs = zip(self._slots[self._head :], self._versions[self._head :], strict=True)
        kept = [(slot, version) for slot, version in pairs if holds(slot, version)]
        self._slots = array("I", [slot for slot, _ in kept])
        self._versions = array("Q", [version for _, version in kept])
        self._head = 0

    def live(self, holds: Callable[[int, int], bool]) -> list[int]:
        """Slots still holding their page, oldest first (for tests and diagnostics)."""
        pairs = zip(self._slots[self._head :], self._versions[self._head :], strict=True)
        return [slot for slot, version in pairs if holds(slot, version)]
