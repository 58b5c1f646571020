"""`ZCache`: the compressed page store of a node (docs/design.md §4, reference §A4).

Pages are compressed once with their pool's codec, lz4 or zstd (same-filled pages kept as one
byte; a page that arrives packed is kept as it came), admitted or refused by
the zcache policy, and held in a slot table: flat arrays of flags, versions and backrefs beside a
list of payloads. The budget counts real bytes: each payload's heap allocation, the slot table,
the tmem index and the put order per page, and the tmem core's per-object charge. Above the
budget, ephemeral pages are evicted oldest first; persistent pages never are. What is not here:
keys and semantics (`ramster.tmem`), shipping pages to peers (`ramster.remote`).
"""

from __future__ import annotations

from array import array
from dataclasses import asdict

from ramster.errors import InvalidArgument
from ramster.page import (
    LZ4_CODEC,
    ZSTD,
    Codec,
    PackedPage,
    UnknownDictionary,
    compress_page,
    decompress_page,
    pack_page,
    unpack_page,
    zstd_dictionary_id,
)
from ramster.tmem.pool import INDEX_BYTES_PER_PAGE
from ramster.tmem.store import NO_EVICTIONS, Created, Rejected, RejectReason
from ramster.units import format_size
from ramster.zcache.admission import REFERENCE_PAGE, admission_refusal
from ramster.zcache.config import ZcacheConfig
from ramster.zcache.counters import ZcacheCounters
from ramster.zcache.dictionaries import DictionaryShelf
from ramster.zcache.eviction import evict_for
from ramster.zcache.lru import PutOrder

LIVE = 1
PERSISTENT = 2
SAME_FILLED = 4
REMOTABLE = 8
"""A page of this node's own clients, which may be shipped to a peer (foreign pages are not)."""
PAGE_SHIFT_BIT = 4
"""Flags bits 4..6 hold log2 of the page size minus 9."""
MIN_PAGE_SHIFT = 9
ZSTD_FRAME = 128
"""The payload is a zstd frame (else an lz4 block, or a fill byte)."""

SLOT_BYTES = 25
"""Slot table bytes per slot, used or free: payload pointer 8, flags 1, version 8, backref 8."""

PUT_ORDER_BYTES = 12
PAGE_BYTES = INDEX_BYTES_PER_PAGE + 2 * PUT_ORDER_BYTES
"""Bytes a live page costs beyond its payload and slot: its tmem index entry and its put order
entries. A remotable ephemeral page sits in two orders (eviction and shipping), any other page
in one; every page is charged for two, a bound 12 bytes above the exact cost of the others."""

COMPACT_SLACK = 1024
"""Stale put-order entries (of freed pages) tolerated beyond twice the live pages. Only eviction
consumes them otherwise, and it never runs on persistent pages nor below the budget."""


def payload_heap_bytes(zsize: int) -> int:
    """Heap bytes CPython spends on a bytes object of `zsize` bytes (64-bit, 3.11+).

    33 bytes of header; pymalloc serves up to 512 bytes in 16-byte steps; larger blocks come
    from malloc with an 8-byte chunk header, also in 16-byte steps.
    """
    size = 33 + zsize
    if size <= 512:
        return (size + 15) & ~15
    return (size + 8 + 15) & ~15


SAMPLE_SHARE = 2
"""Samples and dictionaries take at most this share of the budget (1/2)."""


class ZCache:
    """Compressed pages within a memory budget; implements `ramster.tmem.PageStore`."""

    def __init__(self, config: ZcacheConfig) -> None:
        self.config = config
        self.stats = ZcacheCounters()
        self.dictionaries = DictionaryShelf()
        self._payloads: list[bytes | None] = []
        self._flags = bytearray()
        self._versions = array("Q")
        self._backrefs = array("Q")
        self._free_slots = array("I")
        # Eviction takes the oldest ephemeral page, local or foreign; shipping to peers takes
        # the oldest remotable page of a class. Each order counts the live pages it holds.
        self._evict_order = PutOrder()
        self._ship_orders = (PutOrder(), PutOrder())
        self._remotable = [0, 0]
        self._used = 0
        self._memory = config.memory
        self._eph_bytes = 0
        self._raw_bytes = 0
        # Pages at most this size (per 4 KiB) pass every admission rule: skip the policy call.
        self._admit_always = min(config.max_zsize_eph, config.max_zsize_pers, config.max_mean_zsize)

    def __repr__(self) -> str:
        stats = self.stats
        return (
            f"<ZCache pages={stats.eph_zpages + stats.pers_zpages} "
            f"raw={format_size(self._raw_bytes)} "
            f"stored={format_size(stats.eph_zbytes + stats.pers_zbytes)} "
            f"used={format_size(self.used_bytes)}/{format_size(self.config.memory)} "
            f"rejected={stats.failed_eph_puts + stats.failed_pers_puts}>"
        )

    @property
    def used_bytes(self) -> int:
        """Bytes accounted against the budget now: the pages', and the dictionaries' and their
        samples'."""
        return self._used + self.dictionaries.held_bytes

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
        stats = self.stats
        if codec is LZ4_CODEC and not isinstance(data, PackedPage):  # the common put: no
            payload, same_filled = compress_page(data)  # PackedPage made only to be taken apart
            page_size, zstd, dictionary = len(data), False, 0
        else:
            if isinstance(data, PackedPage):
                packed = data
                if pool_uid and packed.codec == ZSTD and self.dictionaries.trains(persistent):
                    self._note_packed(packed, pool_uid, persistent)
            elif pool_uid and self.dictionaries.trains(persistent):
                packed = self._pack_trained(data, codec, pool_uid, persistent)
            else:
                packed = pack_page(data, codec)
            payload, same_filled, page_size = packed.payload, packed.same_filled, packed.page_size
            zstd, dictionary = not same_filled and packed.codec == ZSTD, packed.dictionary
        zsize = len(payload)
        refusal = None
        if zsize * REFERENCE_PAGE > self._admit_always * page_size:
            refusal = admission_refusal(
                self.config, zsize, page_size, persistent, stats.pers_zbytes, stats.pers_zpages
            )
        if refusal is not None:
            if refusal is RejectReason.COMPRESS_POOR:
                stats.compress_poor += 1
            else:
                stats.mean_compress_poor += 1
            self._count_failed(persistent)
            return Rejected(refusal)
        page_cost = (0 if same_filled else payload_heap_bytes(zsize)) + PAGE_BYTES
        slot_cost = 0 if self._free_slots else SLOT_BYTES
        evicted: tuple[int, ...] = NO_EVICTIONS
        need = self.used_bytes + page_cost + slot_cost - self._memory
        if need > 0:
            # An eviction frees a slot that this page then reuses (no new slot to pay for), and
            # at least one eviction is needed to get it.
            need = max(need - slot_cost, 1)
            made = evict_for(need, self._eph_bytes, self._evict_oldest_eph)
            if persistent:
                stats.pers_ate_eph_failed += made is None
                stats.pers_ate_eph += made is not None
            else:
                stats.eph_ate_tail_failed += made is None
                stats.eph_ate_tail += made is not None
            if made is None:
                self._count_failed(persistent)
                return Rejected(RejectReason.NO_SPACE)
            evicted = tuple(made)
        if same_filled:
            stats.same_filled_pages += 1
            stats.zero_filled_pages += payload == b"\0"
        flags = (
            LIVE
            | (PERSISTENT if persistent else 0)
            | (SAME_FILLED if same_filled else 0)
            | (REMOTABLE if remotable else 0)
            | (ZSTD_FRAME if zstd else 0)
            | (page_size.bit_length() - 1 - MIN_PAGE_SHIFT) << PAGE_SHIFT_BIT
        )
        if self._free_slots:
            slot = self._free_slots.pop()
            self._payloads[slot] = payload
            self._flags[slot] = flags
            self._versions[slot] = version
            self._backrefs[slot] = backref
        else:
            slot = len(self._flags)
            self._payloads.append(payload)
            self._flags.append(flags)
            self._versions.append(version)
            self._backrefs.append(backref)
            self._used += SLOT_BYTES
        self._used += page_cost
        self._raw_bytes += page_size
        if remotable:
            if not same_filled:
                self._count_codec(zstd, 1, zsize, page_size)
                if dictionary:
                    self.dictionaries.ref(dictionary, 1)
            live = self._remotable[persistent] = self._remotable[persistent] + 1
            ship_order = self._ship_orders[persistent]
            if ship_order.push(slot, version) > 2 * live + COMPACT_SLACK:
                ship_order.compact(self._holds)
        if persistent:
            stats.pers_zpages += 1
            stats.pers_zbytes += zsize
            if stats.pers_zpages > stats.pers_zpages_max:
                stats.pers_zpages_max = stats.pers_zpages
            if stats.pers_zbytes > stats.pers_zbytes_max:
                stats.pers_zbytes_max = stats.pers_zbytes
        else:
            self._push(self._evict_order, slot, version, stats.eph_zpages + 1)
            self._eph_bytes += page_cost
            stats.eph_zpages += 1
            stats.eph_zbytes += zsize
            if stats.eph_zpages > stats.eph_zpages_max:
                stats.eph_zpages_max = stats.eph_zpages
            if stats.eph_zbytes > stats.eph_zbytes_max:
                stats.eph_zbytes_max = stats.eph_zbytes
        return Created(slot, evicted)

    def read(self, slot: int, page_size: int) -> bytes:
        if self._flags[slot] & ZSTD_FRAME:
            return unpack_page(self.read_packed(slot, page_size), self.dictionaries.by_id)
        payload = self._payloads[slot]
        assert payload is not None, f"slot {slot} is free"
        return decompress_page(payload, bool(self._flags[slot] & SAME_FILLED), page_size)

    def read_packed(self, slot: int, page_size: int) -> PackedPage:
        payload = self._payloads[slot]
        assert payload is not None, f"slot {slot} is free"
        flags = self._flags[slot]
        if flags & ZSTD_FRAME:
            return PackedPage(payload, False, page_size, ZSTD, zstd_dictionary_id(payload))
        return PackedPage(payload, bool(flags & SAME_FILLED), page_size)

    def version(self, slot: int) -> int:
        return self._versions[slot]

    def free(self, slot: int) -> None:
        flags = self._flags[slot]
        payload = self._payloads[slot]
        assert flags & LIVE and payload is not None, f"slot {slot} is already free"
        persistent = bool(flags & PERSISTENT)
        freed = (0 if flags & SAME_FILLED else payload_heap_bytes(len(payload))) + PAGE_BYTES
        stats = self.stats
        if flags & REMOTABLE:
            self._remotable[persistent] -= 1
            if not flags & SAME_FILLED:
                self._count_codec(bool(flags & ZSTD_FRAME), -1, -len(payload), -_page_size(flags))
                if flags & ZSTD_FRAME and (dict_id := zstd_dictionary_id(payload)):
                    self.dictionaries.ref(dict_id, -1)
        if persistent:
            stats.pers_zpages -= 1
            stats.pers_zbytes -= len(payload)
        else:
            stats.eph_zpages -= 1
            stats.eph_zbytes -= len(payload)
            self._eph_bytes -= freed
        self._used -= freed
        self._raw_bytes -= _page_size(flags)
        self._payloads[slot] = None
        self._flags[slot] = 0
        self._free_slots.append(slot)

    def charge(self, nbytes: int) -> None:
        self._used += nbytes

    def reserve(self, nbytes: int) -> tuple[int, ...] | None:
        need = self.used_bytes + nbytes - self._memory
        made = evict_for(need, self._eph_bytes, self._evict_oldest_eph)
        if made is None:
            return None
        self._used += nbytes
        return tuple(made)

    def counters(self) -> dict[str, int]:
        counters = asdict(self.stats) | self.dictionaries.counters
        counters["used_bytes"] = self.used_bytes
        counters["zstd_dict_bytes"] = self.dictionaries.held_bytes
        counters["memory_bytes"] = self.config.memory
        return counters

    def forget_pool(self, pool_uid: int) -> None:
        self.dictionaries.forget_pool(pool_uid)

    def backref(self, slot: int) -> int:
        return self._backrefs[slot]

    def oldest_remotable(self, persistent: bool, max_pages: int) -> list[int]:
        """Up to `max_pages` remotable pages of a class, oldest put first, taken out of the
        shipping order: `requeue` the ones that could not be shipped."""
        order, holds = self._ship_orders[persistent], self._holds
        slots: list[int] = []
        while len(slots) < max_pages and (slot := order.pop_oldest(holds)) >= 0:
            slots.append(slot)
        return slots

    def requeue(self, slot: int) -> None:
        """Put a page that was taken for shipping back in its order (at the young end)."""
        flags = self._flags[slot]
        assert flags & LIVE and flags & REMOTABLE, f"slot {slot} is not a remotable page"
        self._ship_orders[bool(flags & PERSISTENT)].push(slot, self._versions[slot])

    def put_order(self, persistent: bool) -> list[int]:
        """Live pages of one class, oldest put first: every ephemeral page in eviction order;
        the remotable persistent pages in shipping order."""
        order = self._ship_orders[True] if persistent else self._evict_order
        return order.live(self._holds)

    # -- internals ---------------------------------------------------------------------------

    def _holds(self, slot: int, version: int) -> bool:
        return bool(self._flags[slot] & LIVE) and self._versions[slot] == version

    def _holds_eph(self, slot: int, version: int) -> bool:
        return self._flags[slot] & (LIVE | PERSISTENT) == LIVE and self._versions[slot] == version

    def _push(self, order: PutOrder, slot: int, version: int, live: int) -> None:
        if order.push(slot, version) > 2 * live + COMPACT_SLACK:
            order.compact(self._holds)

    def _evict_oldest_eph(self) -> tuple[int, int]:
        slot = self._evict_order.pop_oldest(self._holds_eph)
        assert slot >= 0, "ephemeral bytes accounted but no ephemeral page left"
        before = self._used
        backref = self._backrefs[slot]
        self.free(slot)
        self.stats.evicted_eph_zpages += 1
        return backref, before - self._used

    def _pack_trained(
        self, page: bytes, codec: Codec, pool_uid: int, persistent: bool
    ) -> PackedPage:
        """`page` of pool `pool_uid` packed with the pool's dictionary, if it has one yet;
        sampled for its next one, if it is sampling. Persistent pages get one only where the
        node records dictionaries (`DictionaryShelf.keeps_persistent`): a restarted node takes
        them back from its peers, and must decode them."""
        self._sample(page, pool_uid, persistent)
        return self.dictionaries.pack(pool_uid, page, codec)

    def _note_packed(self, packed: PackedPage, pool_uid: int, persistent: bool) -> None:
        """A zstd page of pool `pool_uid` its client packed (once the node said it samples no
        more): it counts in the ratio of its dictionary, and, if that drifted meanwhile and
        the pool samples again, it is a sample (unpacked: checked whole as it came in)."""
        shelf = self.dictionaries
        if packed.dictionary:
            shelf.packed(pool_uid, packed)
        if packed.same_filled or not shelf.wants_sample(pool_uid):
            return
        try:
            page = unpack_page(packed, shelf.by_id)
        except (UnknownDictionary, InvalidArgument):
            return  # a page taken back from a peer whose dictionary is lost: no sample
        self._sample(page, pool_uid, persistent)

    def _sample(self, page: bytes, pool_uid: int, persistent: bool) -> None:
        """Keep `page` as a sample of pool `pool_uid` if it is sampling. A sample is kept only
        while it fits the budget beside the pages (it never evicts one), and samples and
        dictionaries take at most a `SAMPLE_SHARE`th of it: persistent pages cannot make room
        by evicting them."""
        shelf = self.dictionaries
        room = min(self._memory - self.used_bytes, self._memory // SAMPLE_SHARE - shelf.held_bytes)
        if shelf.wants_sample(pool_uid) and len(page) <= room:
            shelf.sample(pool_uid, page, persistent)

    def _count_codec(self, zstd: bool, pages: int, zbytes: int, nbytes: int) -> None:
        stats = self.stats
        if zstd:
            stats.zstd_zpages += pages
            stats.zstd_zbytes += zbytes
            stats.zstd_bytes += nbytes
        else:
            stats.lz4_zpages += pages
            stats.lz4_zbytes += zbytes
            stats.lz4_bytes += nbytes

    def _count_failed(self, persistent: bool) -> None:
        if persistent:
            self.stats.failed_pers_puts += 1
        else:
            self.stats.failed_eph_puts += 1


def _page_size(flags: int) -> int:
    return 1 << (((flags >> PAGE_SHIFT_BIT) & 7) + MIN_PAGE_SHIFT)
