"""Pools and objects: the tmem tree that maps (oid, index) to a store slot.

An object keeps its page indices sorted in a compact array beside their slots, so a page costs
the index eight bytes instead of a dict entry and two int objects (docs/design.md §4 density
target). Appending ascending indices, the common case for swap and file pages, is O(1); an insert in
the middle of a very large object moves memory (O(n)). The rules of put/get/flush live in
`ramster.tmem.host`; storage of the bytes in `ramster.tmem.store`.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass

from ramster.tmem.keys import Oid, PoolSpec
from ramster.tmem.quota import Account

OBJECT_BYTES = 448
"""Real memory one object costs the core (instance, two arrays, oid tuple, two dict entries)."""

FOREIGN_POOL_BYTES = 1600
"""Real memory a pool held for a peer costs at most, charged while it is held: the pool, its
spec, its entry in its client's dict and its owner record (a client name of up to 256
characters takes up to 1,104 bytes, 4 a character beyond the Basic Multilingual Plane)."""

FOREIGN_CLIENT_BYTES = 384
"""Real memory one epoch of an origin costs a holder beyond its pools, charged while it holds
pools: its client name (origin number and epoch), its dict of pools, its entry in the table."""

INDEX_BYTES_PER_PAGE = 8
"""Real memory one page costs an object's index: a 4-byte index and a 4-byte slot."""


class TmemObject:
    """The pages of one oid in one pool: sorted indices with the store slot of each."""

    __slots__ = ("indices", "obj_id", "oid", "pool", "slots")

    def __init__(self, pool: Pool, oid: Oid, obj_id: int) -> None:
        self.pool = pool
        self.oid = oid
        self.obj_id = obj_id
        self.indices = array("I")
        self.slots = array("I")

    def __len__(self) -> int:
        return len(self.indices)

    def __repr__(self) -> str:
        return f"<TmemObject oid={self.oid} pages={len(self.indices)}>"

    def _position(self, index: int) -> int:
        """Where `index` is, or -1."""
        indices = self.indices
        pos = bisect_left(indices, index)
        if pos < len(indices) and indices[pos] == index:
            return pos
        return -1

    def slot(self, index: int) -> int | None:
        pos = self._position(index)
        return None if pos < 0 else self.slots[pos]

    def replace(self, index: int, slot: int) -> None:
        """Point an existing page at another slot (a local page becoming remote or back)."""
        pos = self._position(index)
        assert pos >= 0, f"index {index} is not in {self!r}"
        self.slots[pos] = slot

    def insert(self, index: int, slot: int) -> None:
        """Add a page; the caller has removed any page at `index` first."""
        indices = self.indices
        if not indices or index > indices[-1]:
            indices.append(index)
            self.slots.append(slot)
            return
        pos = bisect_left(indices, index)
        indices.insert(pos, index)
        self.slots.insert(pos, slot)

    def pop(self, index: int) -> int | None:
        """Remove the page at `index` and return its slot, or None if there is none."""
        pos = self._position(index)
        if pos < 0:
            return None
        slot = self.slots[pos]
        del self.indices[pos]
        del self.slots[pos]
        return slot

    def items(self) -> Iterator[tuple[int, int]]:
        """(index, slot) pairs in index order."""
        return zip(self.indices, self.slots, strict=True)


class Pool:
    """One pool: its spec, its objects, how many client handles refer to it, and its `uid`,
    the name its pages carry on peers. A `foreign` pool holds pages for another node. `owner`
    is the (client, pool id) that created it, on its origin node: what recovery gives back.
    `account` is its owner scope's (`ramster.tmem.quota`), None for a pool nobody meters."""

    __slots__ = ("account", "foreign", "objects", "owner", "pages", "refs", "spec", "uid")

    def __init__(
        self,
        spec: PoolSpec,
        uid: int,
        foreign: bool = False,
        owner: tuple[str, int] | None = None,
    ) -> None:
        self.spec = spec
        self.uid = uid
        self.foreign = foreign
        self.owner = owner
        self.objects: dict[Oid, TmemObject] = {}
        self.pages = 0
        self.refs = 1
        self.account: Account | None = None

    def count(self, pages: int) -> None:
        """`pages` more pages in the pool (fewer if negative), and in its account: the one place
        a pool's page count changes."""
        self.pages += pages
        account = self.account
        if account is not None:
            account.pages += pages
            account.used += pages * self.spec.page_size

    @property
    def frees_on_get(self) -> bool:
        """The default of a get: private ephemeral pools are exclusive caches (reference §A1.2)."""
        return not self.spec.persistent and not self.spec.shared

    def __repr__(self) -> str:
        return f"<Pool {self.spec.describe()} objects={len(self.objects)} pages={self.pages}>"


@dataclass(frozen=True, slots=True)
class PoolRecord:
    """Who owns pool `uid` of a node: the (client, pool id) that created it and its spec. Holders
    keep it beside the pages, so a restarted node can give each client its pool back."""

    uid: int
    client: str
    pool_id: int
    spec: PoolSpec
