"""Copies of this node's persistent pages on peers: how many there are and where (docs/design.md
§6).

A persistent page has a *primary* copy (here, or on the peer its remote handle names) and may
have a *replica* on another peer, found by the page's version. `persistent_copies` 2 asks for
both; these pure steps say which pages fall short and
rewrite the tree once a peer has stored a new copy (compare-and-swap on the version, like
shipping). Copies on draining nodes still count for reads but are replaced, then flushed. Pure
steps over a page table and its `RemoteIndex`, like `shipping`; the remote layer does the I/O.
What a peer leaving costs the copies is `ramster.remote.departures`.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

from ramster.page import PackedPage
from ramster.remote.handles import OriginTable, RemoteFlush, RemoteRef, Shipment
from ramster.tmem import Created, Stored
from ramster.tmem.elsewhere import REMOTE
from ramster.tmem.keys import Oid, PageVersion
from ramster.tmem.pool import Pool, TmemObject

HERE = -1
"""This node, in a list of the nodes holding a page's copies."""


@dataclass(frozen=True, slots=True)
class PageCopies(PageVersion):
    """Where the copies of one persistent page of `version` are: `primary` is the peer holding
    it (None: here), `replica` the peer holding the other copy (None: no other copy)."""

    obj_id: int
    page_size: int
    primary: int | None
    replica: int | None

    def ref_on(self, node: int) -> RemoteRef:
        """The page as a get from peer `node` asks for it."""
        return RemoteRef(
            node=node,
            obj_id=self.obj_id,
            pool_uid=self.pool_uid,
            persistent=True,
            oid=self.oid,
            index=self.index,
            version=self.version,
            page_size=self.page_size,
        )

    def shipment(self, page: PackedPage) -> Shipment:
        """The page read back, to be stored on a peer as a new copy."""
        return Shipment(
            obj_id=self.obj_id,
            slot=-1,  # not a slot here: a copy settles by version, not by slot
            pool_uid=self.pool_uid,
            persistent=True,
            oid=self.oid,
            index=self.index,
            version=self.version,
            page=page,
        )

    @property
    def holders(self) -> tuple[int, ...]:
        """Every node with a copy, this one as `HERE`, primary first."""
        first = HERE if self.primary is None else self.primary
        return (first,) if self.replica is None else (first, self.replica)


def copies_of_puts(
    table: OriginTable,
    client: str,
    pool_id: int,
    keys: Sequence[tuple[Oid, int]],
    outcomes: Sequence[object],
) -> list[Shipment]:
    """The persistent pages a put just stored (outcome `Stored`), packed, to be copied."""
    pool = table.pool(client, pool_id)
    if not pool.spec.persistent:
        return []
    # Once per page a swap device writes: what is the same for every page is looked up once.
    store, replicas, objects = table.store, table.elsewhere.replicas, pool.objects
    uid, page_size = pool.uid, pool.spec.page_size
    copies = []
    for (oid, index), outcome in zip(keys, outcomes, strict=True):
        if not isinstance(outcome, Stored):
            continue
        obj = objects.get(oid)
        slot = obj.slot(index) if obj is not None else None
        if obj is None or slot is None or slot & REMOTE:
            continue
        version = outcome.version
        if store.version(slot) != version:  # put again later in the batch
            continue
        copies.append(
            Shipment(
                obj_id=obj.obj_id,
                slot=slot,
                pool_uid=uid,
                persistent=True,
                oid=obj.oid,
                index=index,
                version=version,
                page=store.read_packed(slot, page_size),
                replica=replicas.get(version),
            )
        )
    return copies


class ShortfallScan:
    """One pass of the repair loop over this node's persistent pages, in steps: each `step`
    visits at most `limit` pages and returns those short of copies, so the loop can let other
    work run between steps and never holds a list of every page. The tree may change between
    steps: a step resumes at the first page index after the last one visited, objects made
    after the pass began wait for the next pass, and objects gone meanwhile are skipped."""

    __slots__ = ("_at", "_ids", "_index", "_table")

    def __init__(self, table: OriginTable) -> None:
        self._table = table
        self._ids = array("Q", table.objects)  # 8 bytes an object, not an entry per page
        self._at = 0  # the position in `_ids` of the object being visited
        self._index = 0  # the first page index of that object not visited yet

    def __repr__(self) -> str:
        return f"<ShortfallScan object {self._at} of {len(self._ids)} from index {self._index}>"

    @property
    def done(self) -> bool:
        return self._at >= len(self._ids)

    def step(self, wanted: int, draining: frozenset[int], limit: int) -> list[PageCopies]:
        """The next pages, at most `limit` of them visited, with fewer than `wanted` copies on
        nodes that are not draining, or with a copy on a draining node. An object that is not
        this node's persistent one counts as one page visited."""
        table, short, budget = self._table, [], limit
        while budget > 0 and not self.done:
            obj = table.objects.get(self._ids[self._at])
            if obj is None or obj.pool.foreign or not obj.pool.spec.persistent:
                self._at, self._index, budget = self._at + 1, 0, budget - 1
                continue
            first = bisect_left(obj.indices, self._index)
            end = min(len(obj), first + budget)
            for pos in range(first, end):
                index, slot = obj.indices[pos], obj.slots[pos]
                copies = _copies(table, obj.pool, obj, index, slot)
                holders = copies.holders
                kept = sum(node not in draining for node in holders)
                if kept < wanted or kept < len(holders):
                    short.append(copies)
            budget -= max(1, end - first)
            if end < len(obj):
                self._index = obj.indices[end]
            else:
                self._at, self._index = self._at + 1, 0
        return short


def short_of_copies(table: OriginTable, wanted: int) -> int:
    """This node's persistent pages with fewer than `wanted` (1 or 2) copies, from the tree's
    tallies alone (pages per pool, replicas kept): exact at any time, no page visited. A copy
    on a draining node counts here; the repair scan finds those."""
    if wanted < 2:
        return 0  # every page has a copy, here or on the peer its handle names
    pools = {
        id(pool): pool
        for client in table.client_names()
        for pool in table.client_pools(client).values()
        if pool.spec.persistent and not pool.foreign
    }
    # Every replica is the second copy of one of these pages: flushing, overwriting or
    # writing off a page drops its replica with it (`RemoteIndex.forget`, `drop_handle`, …).
    return sum(pool.pages for pool in pools.values()) - len(table.elsewhere.replicas)


def read_here(table: OriginTable, copies: PageCopies) -> PackedPage | None:
    """The page, if this node still holds it locally at that version."""
    _, slot = _current(table, copies)
    if slot is None or slot & REMOTE:
        return None
    return table.store.read_packed(slot, copies.page_size)


def settle(
    table: OriginTable,
    copies: PageCopies | Shipment,
    added: int | None,
    draining: frozenset[int],
    home: PackedPage | None = None,
) -> bool:
    """Rewrite where the page is, now that peer `added` holds a copy too (or `home`: a copy is
    brought here, if the store has room). Keeps two copies, here first, not on draining nodes
    while others exist, and queues flushes of the copies it drops. True if the page now has a
    copy it did not have; False if it changed meanwhile (the new copy is flushed) or `home`
    found no room."""
    remote = table.elsewhere
    obj, slot = _current(table, copies)
    if obj is None or slot is None:
        if added is not None:
            remote.flushes.append(RemoteFlush.of(added, copies))
        return False
    version = copies.version
    replica = remote.replicas.get(version)
    if replica is None and added is not None and home is None and not slot & REMOTE:
        # The common case, a new page's copy (what the rules below decide for two holders,
        # draining or not, with no list made): here first, `added` second.
        remote.replicas[version] = added
        return True
    holders = [HERE] if not slot & REMOTE else [remote.handles.node(slot)]
    if replica is not None:
        holders.append(replica)
    grew = added is not None and added not in holders
    if added is not None and grew:
        holders.append(added)
    if home is not None and holders[0] != HERE and _bring_home(table, obj, copies, home):
        slot = obj.slot(copies.index)
        assert slot is not None
        holders.insert(0, HERE)
        grew = True
    # Draining holders' copies go only once two others exist.
    kept = [node for node in holders if node not in draining]
    chosen = (kept + [node for node in holders if node in draining])[:2]
    for node in holders:
        if node not in chosen and node != HERE:
            remote.flushes.append(RemoteFlush.of(node, copies))
    if chosen[0] != HERE:
        assert slot & REMOTE, "a page here stays the primary"
        remote.handles.move(slot, chosen[0])
    if len(chosen) > 1:
        remote.replicas[version] = chosen[1]
    else:
        remote.replicas.pop(version, None)
    return grew or (added is None and home is None)


def held_at(table: OriginTable, shipment: Shipment) -> bool:
    """Whether the key of `shipment` still holds its version (here or remotified)."""
    return _current(table, shipment)[1] is not None


def copied_meanwhile(table: OriginTable, shipment: Shipment) -> bool:
    """Whether the key of `shipment` still holds its version and that has its other copy,
    made by someone else while this one was on its way (a repair round)."""
    return held_at(table, shipment) and shipment.version in table.elsewhere.replicas


def unput(table: OriginTable, shipment: Shipment) -> bool:
    """Take back a put whose copy no peer stored: the key goes (with any copy it has), unless
    it was put again meanwhile. True if it went."""
    obj, slot = table.at(shipment.obj_id, shipment.index)
    if obj is None or slot is None or table.slot_version(slot) != shipment.version:
        return False
    obj.pop(shipment.index)
    table.release(obj, shipment.index, slot)
    table.elsewhere.counts["pers_puts_unreplicated"] += 1
    return True


def lost_copy(table: OriginTable, ref: RemoteRef, node: int) -> bool:
    """Peer `node` no longer has a good copy of `ref` (it answered without one): if it is still
    one of the page's two holders, the other copy is the only one now (a flush of whatever
    `node` holds at that version is queued). True if the tree changed."""
    remote = table.elsewhere
    _, slot = table.at(ref.obj_id, ref.index)
    if slot is None or not slot & REMOTE or remote.version(slot) != ref.version:
        return False
    replica = remote.replicas.get(ref.version)
    if replica is None:
        return False
    if remote.handles.node(slot) == node:
        remote.handles.move(slot, replica)
    elif replica != node:
        return False  # the copies moved meanwhile: `node` is not a holder any more
    del remote.replicas[ref.version]
    remote.flushes.append(RemoteFlush.of(node, ref))
    return True


# -- internals ---------------------------------------------------------------------------------


def _copies(table: OriginTable, pool: Pool, obj: TmemObject, index: int, slot: int) -> PageCopies:
    remote = table.elsewhere
    version = table.slot_version(slot)
    return PageCopies(
        obj_id=obj.obj_id,
        pool_uid=pool.uid,
        oid=obj.oid,
        index=index,
        version=version,
        page_size=pool.spec.page_size,
        primary=remote.handles.node(slot) if slot & REMOTE else None,
        replica=remote.replicas.get(version),
    )


def _current(
    table: OriginTable, copies: PageCopies | Shipment
) -> tuple[TmemObject | None, int | None]:
    """The page's object, and the slot of its key if it still holds `copies.version` (else
    None)."""
    obj, slot = table.at(copies.obj_id, copies.index)
    if slot is None or table.slot_version(slot) != copies.version:
        return obj, None
    return obj, slot


def _bring_home(
    table: OriginTable, obj: TmemObject, copies: PageCopies | Shipment, page: PackedPage
) -> bool:
    """Store `page` here in place of its remote handle (the peer keeps its copy)."""
    outcome = table.store_page(obj, copies.index, page, copies.version)
    if not isinstance(outcome, Created):
        return False
    handle = obj.slot(copies.index)
    assert handle is not None and handle & REMOTE
    table.elsewhere.remove(handle, True)
    obj.replace(copies.index, outcome.slot)
    return True
