"""Copies of this node's persistent pages on peers: how many there are and where (DESIGN §6).

A persistent page has a *primary* copy (here, or on the peer its remote handle names) and may
have a *replica* on another peer, found by the page's version. `persistent_copies` 2 asks for
both; these pure steps say which pages fall short, forget the copies of a node that left, and
rewrite the tree once a peer has stored a new copy (compare-and-swap on the version, like
shipping), and take back the copies peers kept through this node's restart (`take_back`).
Copies on draining nodes still count for reads but are replaced, then flushed. The remote layer
does the I/O. This module is the core's friend, like `shipping`.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ramster.page import PackedPage
from ramster.tmem.host import INDEX_BITS, Stored, Tmem
from ramster.tmem.keys import Oid
from ramster.tmem.pool import Pool, TmemObject
from ramster.tmem.remote import REMOTE, RemoteFlush, RemoteRef, Shipment
from ramster.tmem.shipping import drop_handle
from ramster.tmem.store import Created

HERE = -1
"""This node, in a list of the nodes holding a page's copies."""


@dataclass(frozen=True, slots=True)
class PageCopies:
    """Where the copies of one persistent page of `version` are: `primary` is the peer holding
    it (None: here), `replica` the peer holding the other copy (None: no other copy)."""

    obj_id: int
    pool_uid: int
    oid: Oid
    index: int
    version: int
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


@dataclass(frozen=True, slots=True)
class WriteOff:
    """What forgetting a node's copies did."""

    promoted: int  # pages whose replica became the primary
    lost: int  # persistent pages whose only copy it held
    ephemeral: int  # ephemeral pages it held (misses from now on)
    replicas: int  # replicas it held of pages kept elsewhere


def copies_of_puts(
    tmem: Tmem,
    client: str,
    pool_id: int,
    keys: Sequence[tuple[Oid, int]],
    outcomes: Sequence[object],
) -> list[Shipment]:
    """The persistent pages a put just stored (outcome `Stored`), packed, to be copied."""
    pool = tmem._pool(client, pool_id)
    if not pool.spec.persistent:
        return []
    copies = []
    for (oid, index), outcome in zip(keys, outcomes, strict=True):
        if not isinstance(outcome, Stored):
            continue
        obj = pool.objects.get(oid)
        slot = obj.slot(index) if obj is not None else None
        if obj is None or slot is None or slot & REMOTE:
            continue
        if tmem._store.version(slot) != outcome.version:  # put again later in the batch
            continue
        page = tmem._store.read_packed(slot, pool.spec.page_size)
        copies.append(_shipment(tmem, obj, index, slot, page))
    return copies


class ShortfallScan:
    """One pass of the repair loop over this node's persistent pages, in steps: each `step`
    visits at most `limit` pages and returns those short of copies, so the loop can let other
    work run between steps and never holds a list of every page. The tree may change between
    steps: a step resumes at the first page index after the last one visited, objects made
    after the pass began wait for the next pass, and objects gone meanwhile are skipped."""

    __slots__ = ("_at", "_ids", "_index", "_tmem")

    def __init__(self, tmem: Tmem) -> None:
        self._tmem = tmem
        self._ids = array("Q", tmem._objects)  # 8 bytes an object, not an entry per page
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
        tmem, short, budget = self._tmem, [], limit
        while budget > 0 and not self.done:
            obj = tmem._objects.get(self._ids[self._at])
            if obj is None or obj.pool.foreign or not obj.pool.spec.persistent:
                self._at, self._index, budget = self._at + 1, 0, budget - 1
                continue
            first = bisect_left(obj.indices, self._index)
            end = min(len(obj), first + budget)
            for pos in range(first, end):
                index, slot = obj.indices[pos], obj.slots[pos]
                copies = _copies(tmem, obj.pool, obj, index, slot)
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


def short_of_copies(tmem: Tmem, wanted: int) -> int:
    """This node's persistent pages with fewer than `wanted` (1 or 2) copies, from the tree's
    tallies alone (pages per pool, replicas kept): exact at any time, no page visited. A copy
    on a draining node counts here; the repair scan finds those."""
    if wanted < 2:
        return 0  # every page has a copy, here or on the peer its handle names
    pools = {
        id(pool): pool
        for pools in tmem._clients.values()
        for pool in pools.values()
        if pool.spec.persistent and not pool.foreign
    }
    # Every replica is the second copy of one of these pages: flushing, overwriting or
    # writing off a page drops its replica with it (`Tmem._free_slot`, `drop_handle`, …).
    return sum(pool.pages for pool in pools.values()) - len(tmem._replicas)


def read_here(tmem: Tmem, copies: PageCopies) -> PackedPage | None:
    """The page, if this node still holds it locally at that version."""
    slot = _current_slot(tmem, copies)
    if slot is None or slot & REMOTE:
        return None
    return tmem._store.read_packed(slot, copies.page_size)


def settle(
    tmem: Tmem,
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
    slot = _current_slot(tmem, copies)
    obj = tmem._objects.get(copies.obj_id)
    if obj is None or slot is None:
        if added is not None:
            tmem.remote_flushes.append(RemoteFlush.of(added, copies))
        return False
    version = copies.version
    holders = [HERE] if not slot & REMOTE else [tmem._remote.node(slot)]
    replica = tmem._replicas.get(version)
    if replica is not None:
        holders.append(replica)
    grew = added is not None and added not in holders
    if added is not None and grew:
        holders.append(added)
    if home is not None and holders[0] != HERE and _bring_home(tmem, obj, copies, home):
        slot = obj.slot(copies.index)
        assert slot is not None
        holders.insert(0, HERE)
        grew = True
    # Draining holders' copies go only once two others exist.
    kept = [node for node in holders if node not in draining]
    chosen = (kept + [node for node in holders if node in draining])[:2]
    for node in holders:
        if node not in chosen and node != HERE:
            tmem.remote_flushes.append(RemoteFlush.of(node, copies))
    if chosen[0] != HERE:
        assert slot & REMOTE, "a page here stays the primary"
        tmem._remote.move(slot, chosen[0])
    if len(chosen) > 1:
        tmem._replicas[version] = chosen[1]
    else:
        tmem._replicas.pop(version, None)
    return grew or (added is None and home is None)


def unput(tmem: Tmem, shipment: Shipment) -> bool:
    """Take back a put whose copy no peer stored: the key goes (with any copy it has), unless
    it was put again meanwhile. True if it went."""
    obj = tmem._objects.get(shipment.obj_id)
    slot = obj.slot(shipment.index) if obj is not None else None
    if obj is None or slot is None or tmem.slot_version(slot) != shipment.version:
        return False
    obj.pop(shipment.index)
    tmem._release(obj, shipment.index, slot)
    tmem._counters["pers_puts_unreplicated"] += 1
    return True


def lost_copy(tmem: Tmem, ref: RemoteRef, node: int) -> bool:
    """Peer `node` no longer has a good copy of `ref` (it answered without one): if it is still
    one of the page's two holders, the other copy is the only one now (a flush of whatever
    `node` holds at that version is queued). True if the tree changed."""
    obj = tmem._objects.get(ref.obj_id)
    slot = obj.slot(ref.index) if obj is not None else None
    if slot is None or not slot & REMOTE or tmem._remote.version(slot) != ref.version:
        return False
    replica = tmem._replicas.get(ref.version)
    if replica is None:
        return False
    if tmem._remote.node(slot) == node:
        tmem._remote.move(slot, replica)
    elif replica != node:
        return False  # the copies moved meanwhile: `node` is not a holder any more
    del tmem._replicas[ref.version]
    tmem.remote_flushes.append(RemoteFlush.of(node, ref))
    return True


def write_off(tmem: Tmem, node: int, restarted: bool) -> tuple[WriteOff, list[RemoteFlush]]:
    """Stop counting on the copies `node` holds: it left the view, or came back `restarted`
    (its memory is gone). A page it held whose other copy lives elsewhere is read from that copy
    from now on; its replicas are forgotten (the repair loop makes new ones). A page whose only
    copy it holds stays remote while it may come back, and is lost (persistent) or a miss
    (ephemeral) once it restarted. Returns what was done and the flushes its now unreferenced
    copies need should it come back with them (none once restarted)."""
    promoted = lost = ephemeral = replicas = 0
    orphans: list[RemoteFlush] = []
    for pool, obj in list(_own_objects(tmem)):
        for index, slot in list(obj.items()):
            version = tmem.slot_version(slot)
            flush = RemoteFlush(node, pool.uid, obj.oid, index, version)
            if tmem._replicas.get(version) == node:
                del tmem._replicas[version]
                replicas += 1
                orphans.append(flush)
            if not slot & REMOTE or tmem._remote.node(slot) != node:
                continue
            replica = tmem._replicas.pop(version, None)
            if replica is not None:
                tmem._remote.move(slot, replica)
                promoted += 1
                orphans.append(flush)
                continue
            if not restarted:
                continue
            if pool.spec.persistent:
                lost += 1
            else:
                ephemeral += 1
            drop_handle(obj, index, slot, tmem)
    tmem._counters["remote_pers_pages_lost"] += lost
    orphans += [f for f in tmem.remote_flushes if f.node == node]
    tmem.remote_flushes = [f for f in tmem.remote_flushes if f.node != node]
    return WriteOff(promoted, lost, ephemeral, replicas), [] if restarted else orphans


def take_back(tmem: Tmem, holder: int, pool: Pool, oid: Oid, index: int, version: int) -> int:
    """A copy peer `holder` kept of this node's page at the key through a restart
    (`ramster.remote.restore`) becomes a remote handle to it, or its replica if another peer
    holds the same version; an older copy of the key is flushed, and so is this holder's if the
    key has a newer copy or two already. Returns 1 if the page became this node's again."""
    obj = pool.objects.get(oid)
    if obj is None:
        obj = tmem._new_object(pool, oid)
    slot = obj.slot(index)
    if slot is not None:
        held = tmem.slot_version(slot)
        replica = tmem._replicas.get(held)
        if held == version and slot & REMOTE:
            if holder in (tmem._remote.node(slot), replica):
                return 0
            if replica is None:
                tmem._replicas[version] = holder
                return 0
        if held >= version:  # a newer copy, or a third one: this holder's goes
            tmem.remote_flushes.append(RemoteFlush(holder, pool.uid, oid, index, version))
            return 0
        obj.pop(index)
        tmem._free_slot(obj, index, slot)  # the older copies are flushed
        pool.pages -= 1
    obj.insert(index, tmem._remote_add(holder, version, True))
    pool.pages += 1
    return 1


def remote_holders(tmem: Tmem) -> set[int]:
    """The nodes holding the copy a remote handle of this node names (replicas aside: a node that
    leaves the view has them written off at once)."""
    return tmem._remote.holders()


# -- internals ---------------------------------------------------------------------------------


def _own_objects(tmem: Tmem, persistent: bool | None = None) -> Iterator[tuple[Pool, TmemObject]]:
    for obj in tmem._objects.values():
        pool = obj.pool
        if not pool.foreign and (persistent is None or pool.spec.persistent == persistent):
            yield pool, obj


def _copies(tmem: Tmem, pool: Pool, obj: TmemObject, index: int, slot: int) -> PageCopies:
    version = tmem.slot_version(slot)
    return PageCopies(
        obj_id=obj.obj_id,
        pool_uid=pool.uid,
        oid=obj.oid,
        index=index,
        version=version,
        page_size=pool.spec.page_size,
        primary=tmem._remote.node(slot) if slot & REMOTE else None,
        replica=tmem._replicas.get(version),
    )


def _shipment(tmem: Tmem, obj: TmemObject, index: int, slot: int, page: PackedPage) -> Shipment:
    version = tmem.slot_version(slot)
    return Shipment(
        obj_id=obj.obj_id,
        slot=slot,
        pool_uid=obj.pool.uid,
        persistent=obj.pool.spec.persistent,
        oid=obj.oid,
        index=index,
        version=version,
        page=page,
        replica=tmem._replicas.get(version),
    )


def _current_slot(tmem: Tmem, copies: PageCopies | Shipment) -> int | None:
    """The slot of the page's key if it still holds `copies.version`, else None."""
    obj = tmem._objects.get(copies.obj_id)
    slot = obj.slot(copies.index) if obj is not None else None
    if slot is None or tmem.slot_version(slot) != copies.version:
        return None
    return slot


def _bring_home(
    tmem: Tmem, obj: TmemObject, copies: PageCopies | Shipment, page: PackedPage
) -> bool:
    """Store `page` here in place of its remote handle (the peer keeps its copy)."""
    outcome = tmem._store.create(
        page, True, copies.version, (obj.obj_id << INDEX_BITS) | copies.index
    )
    if outcome.evicted:
        tmem._forget(outcome.evicted, keep=obj)
    if not isinstance(outcome, Created):
        return False
    handle = obj.slot(copies.index)
    assert handle is not None and handle & REMOTE
    tmem._remote_remove(handle, True)
    obj.replace(copies.index, outcome.slot)
    return True
