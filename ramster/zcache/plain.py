"""`PlainStore`: pages kept as they are, the reference the zcache store is checked against.

No compression, no admission policy: it refuses a page only for want of room, under the same
eviction rule as `ZCache`. Written for obviousness, not density; the contract suite runs every
store test against both.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from ramster.errors import InvalidArgument
from ramster.page import LZ4_CODEC, Codec, PackedPage, pack_page, unpack_page
from ramster.tmem.store import NO_EVICTIONS, Created, Rejected, RejectReason
from ramster.units import format_size
from ramster.zcache.eviction import evict_for

PLAIN_PAGE_BYTES = 160
"""Bytes a page costs beyond its data: bytes header, tuple, dict entries (approximate)."""


@dataclass(frozen=True, slots=True)
class _Page:
    data: bytes
    persistent: bool
    version: int
    backref: int
    remotable: bool


class PlainStore:
    """Uncompressed pages in a dict within `memory` bytes; implements `ramster.tmem.PageStore`."""

    def __init__(self, memory: int) -> None:
        if memory < 1:
            raise InvalidArgument.field("memory", memory, "bytes >= 1")
        self.memory = memory
        self._pages: dict[int, _Page] = {}
        self._eph_order: dict[int, None] = {}
        self._ship_orders: tuple[dict[int, None], dict[int, None]] = ({}, {})
        self._next_slot = 0
        self._used = 0
        self._eph_bytes = 0
        self._evicted = 0

    def __repr__(self) -> str:
        return (
            f"<PlainStore pages={len(self._pages)} "
            f"used={format_size(self._used)}/{format_size(self.memory)}>"
        )

    def create(
        self,
        data: bytes | PackedPage,
        persistent: bool,
        version: int,
        backref: int,
        remotable: bool = True,
        codec: Codec = LZ4_CODEC,
        pool_uid: int = 0,
    ) -> Created | Rejected:
        del codec, pool_uid  # pages are kept unpacked
        if isinstance(data, PackedPage):
            data = unpack_page(data)
        cost = len(data) + PLAIN_PAGE_BYTES
        evicted: tuple[int, ...] = NO_EVICTIONS
        need = self._used + cost - self.memory
        if need > 0:
            made = evict_for(need, self._eph_bytes, self._evict_oldest_eph)
            if made is None:
                return Rejected(RejectReason.NO_SPACE)
            evicted = tuple(made)
        slot = self._next_slot
        self._next_slot += 1
        self._pages[slot] = _Page(bytes(data), persistent, version, backref, remotable)
        if remotable:
            self._ship_orders[persistent][slot] = None
        self._used += cost
        if not persistent:
            self._eph_order[slot] = None
            self._eph_bytes += cost
        return Created(slot, evicted)

    def read(self, slot: int, page_size: int) -> bytes:
        data = self._pages[slot].data
        assert len(data) == page_size
        return data

    def read_packed(self, slot: int, page_size: int) -> PackedPage:
        return pack_page(self.read(slot, page_size))

    def version(self, slot: int) -> int:
        return self._pages[slot].version

    def free(self, slot: int) -> None:
        page = self._pages.pop(slot)
        self._ship_orders[page.persistent].pop(slot, None)
        cost = len(page.data) + PLAIN_PAGE_BYTES
        self._used -= cost
        if not page.persistent:
            del self._eph_order[slot]
            self._eph_bytes -= cost

    def charge(self, nbytes: int) -> None:
        self._used += nbytes

    def reserve(self, nbytes: int) -> tuple[int, ...] | None:
        made = evict_for(self._used + nbytes - self.memory, self._eph_bytes, self._evict_oldest_eph)
        if made is None:
            return None
        self._used += nbytes
        return tuple(made)

    def forget_pool(self, pool_uid: int) -> None:
        """Nothing is kept per pool."""

    def counters(self) -> dict[str, int]:
        persistent = sum(page.persistent for page in self._pages.values())
        return {
            "eph_zpages": len(self._pages) - persistent,
            "pers_zpages": persistent,
            "evicted_eph_zpages": self._evicted,
            "used_bytes": self._used,
            "memory_bytes": self.memory,
        }

    def backref(self, slot: int) -> int:
        return self._pages[slot].backref

    def oldest_remotable(self, persistent: bool, max_pages: int) -> list[int]:
        order = self._ship_orders[persistent]
        slots = list(itertools.islice(order, max_pages))
        for slot in slots:
            del order[slot]
        return slots

    def requeue(self, slot: int) -> None:
        page = self._pages[slot]
        assert page.remotable, f"slot {slot} is not a remotable page"
        self._ship_orders[page.persistent][slot] = None

    def put_order(self, persistent: bool) -> list[int]:
        """Live slots of one class, oldest put first."""
        if not persistent:
            return list(self._eph_order)
        return [slot for slot, page in self._pages.items() if page.persistent]

    def _evict_oldest_eph(self) -> tuple[int, int]:
        slot = next(iter(self._eph_order))
        page = self._pages[slot]
        before = self._used
        self.free(slot)
        self._evicted += 1
        return page.backref, before - self._used
