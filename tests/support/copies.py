"""Persistent pages with copies on two nodes, built in the pure core for unit tests
(`ramster.remote.copies`): a host `Tmem`, numbered pages stored or copied to a peer, the pages
short of copies and where each copy is. A peer is a node number (`B`, `C`, `D`).

Not here: the holder side of a copy (`tests.support.foreign`), real nodes (`tests.support.nodes`).
"""

from __future__ import annotations

import random

from ramster.remote.copies import (
    HERE,
    PageCopies,
    ShortfallScan,
    copies_of_puts,
    settle,
)
from ramster.remote.handles import origin_tmem
from ramster.tmem import PoolSpec, Rejected, Stored, Tmem
from ramster.zcache import ZCache, ZcacheConfig

APP = "app"
PAGE_SIZE = 4096
PERSISTENT = PoolSpec(persistent=True)
B, C, D = 2, 3, 4
NOBODY: frozenset[int] = frozenset()
ALL = 1 << 30


def page(seed: int) -> bytes:
    return random.Random(seed).randbytes(1500) + bytes(PAGE_SIZE - 1500)


def host() -> Tmem:
    return origin_tmem(ZCache(ZcacheConfig(memory=4 << 20)))


def stored(tmem: Tmem, pool: int, keys: list[tuple[int, int]]) -> list[Stored | Rejected]:
    """Put page(oid * 100 + index) at every key; every outcome."""
    outcomes = tmem.put_many(APP, pool, [(o, i, page(o * 100 + i)) for o, i in keys])
    assert all(isinstance(o, Stored) for o in outcomes), outcomes
    return outcomes


def copied(tmem: Tmem, pool: int, keys: list[tuple[int, int]], node: int) -> None:
    """Put pages at `keys` and record their copies on `node`, as a put with two copies does."""
    outcomes = stored(tmem, pool, keys)
    oids = [((o, 0, 0), i) for o, i in keys]
    for shipment in copies_of_puts(tmem.table, APP, pool, oids, outcomes):
        assert settle(tmem.table, shipment, node, NOBODY)


def shortfall(tmem: Tmem, wanted: int, draining: frozenset[int]) -> list[PageCopies]:
    """Every page a whole pass of the repair scan finds short of copies, in one step."""
    scan = ShortfallScan(tmem.table)
    short = scan.step(wanted, draining, limit=ALL)
    assert scan.done
    return short


def where(tmem: Tmem) -> dict[tuple[int, int], tuple[int, int | None]]:
    """Every persistent page's (oid word 0, index) -> (primary, replica), HERE for this node."""
    return {
        (c.oid[0], c.index): (HERE if c.primary is None else c.primary, c.replica)
        for c in shortfall(tmem, 3, NOBODY)  # every page has fewer than 3 copies
    }
