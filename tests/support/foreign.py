"""Pages a node holds for other nodes, built in the pure core for unit tests
(`ramster.holder.foreign`): origins, numbered packed pages, foreign pages of an ephemeral or a
persistent pool, and holder `Tmem`s whose budgets are computed from the store's own constants.

Not here: an origin's copies (`tests.support.copies`), real nodes (`tests.support.nodes`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ramster.holder.foreign import DEFAULT_LIMITS, ForeignPages, origin_client, put_foreign
from ramster.page import PackedPage, pack_page
from ramster.remote.handles import origin_tmem
from ramster.tmem import PutOutcome, Tmem
from ramster.tmem.keys import PageVersion, TmemLimits
from ramster.tmem.pool import FOREIGN_CLIENT_BYTES, FOREIGN_POOL_BYTES, OBJECT_BYTES, PoolRecord
from ramster.tmem.table import PageTable
from ramster.zcache import ZCache, ZcacheConfig
from ramster.zcache.store import PAGE_BYTES, SLOT_BYTES, payload_heap_bytes

PAGE_SIZE = 4096
ORIGIN = origin_client(2, "e2")
OTHER = origin_client(3, "e3")
EPH_UID, PERS_UID = 1, 2
"""The origin's pool uids (its names for its pools on every peer)."""
OID = (7, 0, 0)
ALL = 1 << 30


@dataclass(frozen=True, slots=True)
class ForeignPage(PageVersion):
    """One page an origin hands a holder, as a test writes it: its uid, key and version on the
    origin, packed (the holder takes a call's pages as columns, `ForeignPages`)."""

    persistent: bool
    page: PackedPage


def columns(pages: Sequence[ForeignPage]) -> ForeignPages:
    """`pages` as the columns a holder takes."""
    return ForeignPages(
        [p.pool_uid for p in pages],
        [p.persistent for p in pages],
        [(p.oid, p.index) for p in pages],
        [p.version for p in pages],
        [p.page for p in pages],
    )


def put_foreign_pages(
    table: PageTable[Any],
    origin: str,
    pages: Sequence[ForeignPage],
    owners: Sequence[PoolRecord] = (),
    limits: TmemLimits = DEFAULT_LIMITS,
) -> list[PutOutcome]:
    """`put_foreign` of `pages` written one by one."""
    return put_foreign(table, origin, columns(pages), owners, limits)


def packed(seed: int) -> PackedPage:
    """A distinct packed page of 2034 bytes."""
    return pack_page(random.Random(seed).randbytes(2000) + bytes(PAGE_SIZE - 2000))


PAGE_COST = SLOT_BYTES + payload_heap_bytes(2034) + PAGE_BYTES
"""Budget bytes one such page takes in a fresh store (its slot, its payload, its metadata)."""


def foreign(
    index: int, persistent: bool = False, version: int | None = None, oid: int = 7
) -> ForeignPage:
    uid = PERS_UID if persistent else EPH_UID
    return ForeignPage(
        uid,
        (oid, 0, 0),
        index,
        1000 + index if version is None else version,
        persistent,
        packed(index),
    )


def holder(memory: int = 4 << 20) -> tuple[Tmem, ZCache]:
    store = ZCache(ZcacheConfig(memory=memory))
    return origin_tmem(store), store


def fitting_holder(pages: int, objects: int, pools: int = 1) -> tuple[Tmem, ZCache]:
    """A holder whose budget takes exactly `pages` pages in `objects` objects, in `pools` pools
    of one origin each."""
    held = pools * (FOREIGN_CLIENT_BYTES + FOREIGN_POOL_BYTES)
    return holder(held + objects * OBJECT_BYTES + pages * PAGE_COST)


def foreign_counts(tmem: Tmem) -> tuple[int, int]:
    counters = tmem.counters()
    return counters["foreign_eph_pages"], counters["foreign_pers_pages"]
