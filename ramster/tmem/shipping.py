"""Moving this node's pages to peers and back: the core half of RAMster (reference §A5.2 to §A5.6).

Pure decisions over a `Tmem`'s tree; the remote layer (`ramster.remote`) does the I/O and calls
back here. Shipping takes the oldest remotable pages; a shipped page becomes a remote handle only
if it is still the page shipped (same slot, same version) — otherwise the peer's copy is an
orphan and a flush for it is queued. A fetched page is checked again before it is handed out:
flushed meanwhile ⇒ miss; overwritten meanwhile ⇒ the newer local page wins. A page no holder
answered for is a miss for good if ephemeral (its copies are flushed), and stays if persistent.
No get frees here: a get that frees ends with `Tmem.take`. This module is the core's friend: it
works on the host's private tree, and nothing else does.
"""

from __future__ import annotations

from collections.abc import Sequence

from ramster.page import PackedPage
from ramster.tmem.host import INDEX_BITS, INDEX_MASK, Hit, Tmem
from ramster.tmem.pool import TmemObject
from ramster.tmem.remote import REMOTE, RemoteFlush, RemoteRef, Shipment, Unanswered
from ramster.tmem.store import Created


def take_shipments(tmem: Tmem, persistent: bool, max_pages: int, max_bytes: int) -> list[Shipment]:
    """The oldest remotable pages of a class: at most `max_pages`, and no more once `max_bytes`
    packed bytes are taken (pages are taken one by one, so none loses its place)."""
    store = tmem._store
    shipments: list[Shipment] = []
    size = 0
    while len(shipments) < max_pages and size < max_bytes:
        taken = store.oldest_remotable(persistent, 1)
        if not taken:
            break
        slot = taken[0]
        backref = store.backref(slot)
        obj = tmem._objects[backref >> INDEX_BITS]
        pool = obj.pool
        page = store.read_packed(slot, pool.spec.page_size)
        size += len(page.payload)
        version = store.version(slot)
        shipments.append(
            Shipment(
                obj_id=obj.obj_id,
                slot=slot,
                pool_uid=pool.uid,
                persistent=persistent,
                oid=obj.oid,
                index=backref & INDEX_MASK,
                version=version,
                page=page,
                replica=tmem._replicas.get(version) if persistent else None,
            )
        )
    return shipments


def complete_shipments(
    tmem: Tmem, node: int, shipments: Sequence[Shipment], stored: Sequence[bool]
) -> int:
    """Swap each page the peer `node` stored for a remote handle (compare-and-swap on slot and
    version); requeue the ones it refused. Return how many became remote."""
    counters, store = tmem._counters, tmem._store
    remoted = 0
    for shipment, ok in zip(shipments, stored, strict=True):
        obj = tmem._objects.get(shipment.obj_id)
        slot = obj.slot(shipment.index) if obj is not None else None
        unchanged = (
            obj is not None
            and slot == shipment.slot
            and not slot & REMOTE
            and store.version(slot) == shipment.version
        )
        kind = "pers" if shipment.persistent else "eph"
        if ok and unchanged and tmem._replicas.get(shipment.version) == node:
            # The page's replica went to that peer meanwhile (repair): the copy shipped is the
            # replica itself (same version); the page stays here, the peer keeps its copy.
            counters[f"{kind}_pages_remote_failed"] += 1
            store.requeue(shipment.slot)
            continue
        if not ok:
            counters[f"{kind}_pages_remote_failed"] += 1
            if unchanged:
                store.requeue(shipment.slot)
            continue
        if not unchanged:  # flushed or overwritten while in flight: the peer's copy is stale
            tmem.remote_flushes.append(RemoteFlush.of(node, shipment))
            continue
        assert obj is not None
        store.free(shipment.slot)
        obj.replace(shipment.index, tmem._remote_add(node, shipment.version, shipment.persistent))
        counters[f"{kind}_pages_remoted"] += 1
        remoted += 1
    return remoted


def return_shipments(tmem: Tmem, shipments: Sequence[Shipment]) -> None:
    """Give back pages taken but not sent (no peer may take them): each keeps its place in the
    shipping order if it is unchanged."""
    store = tmem._store
    for shipment in shipments:
        obj = tmem._objects.get(shipment.obj_id)
        slot = obj.slot(shipment.index) if obj is not None else None
        unchanged = slot is not None and slot == shipment.slot and not slot & REMOTE
        if unchanged and store.version(shipment.slot) == shipment.version:
            store.requeue(shipment.slot)


def localify(
    tmem: Tmem,
    ref: RemoteRef,
    answer: tuple[PackedPage, int] | Unanswered | None,
    home: bool = False,
) -> Hit | Unanswered | None:
    """What a get of `ref` answers once its holders replied `answer`: the page and the version
    a holder held; `Unanswered`, no holder answered in time; None, every holder answered without
    the page. Frees nothing: a get that frees ends with `Tmem.take`. With `home` (the store has
    room) a persistent page read from a peer comes home (`repatriate`)."""
    counters = tmem._counters
    kind = "pers" if ref.persistent else "eph"
    obj, handle = _current(tmem, ref)
    if obj is None or handle is None:  # flushed while waiting: nothing is resurrected
        counters[f"remote_{kind}_pages_unsucc_get"] += 1
        return None
    if not handle & REMOTE:  # put again while waiting: the newer local page wins
        counters[f"remote_{kind}_pages_unsucc_get"] += 1
        page = tmem._store.read_packed(handle, ref.page_size)
        return Hit(page, obj.obj_id, ref.index, tmem._store.version(handle))
    current = tmem._remote.version(handle)
    if isinstance(answer, tuple) and answer[1] == current:
        # The peer holds what the handle says: the version asked for, or a newer one shipped
        # to the same peer while the request was out.
        counters[f"remote_{kind}_pages_succ_get"] += 1
        if home and ref.persistent and current == ref.version:
            repatriate(tmem, ref, answer[0])
        return Hit(answer[0], obj.obj_id, ref.index, current)
    if current != ref.version:  # re-put and re-shipped meanwhile: a later get will find it
        counters[f"remote_{kind}_pages_unsucc_get"] += 1
        return None
    if isinstance(answer, Unanswered):
        if ref.persistent:  # the page is not gone: it stays, to be asked for again
            return answer
        # An ephemeral page may vanish, but a miss must stay a miss (get-get coherency): the
        # record goes and the holder is told to drop its copy.
        counters["remote_eph_pages_unsucc_get"] += 1
        drop_remote(tmem, ref)
        return None
    counters[f"remote_{kind}_pages_unsucc_get"] += 1
    if ref.persistent:
        counters["remote_pers_pages_lost"] += 1
    drop_handle(obj, ref.index, handle, tmem)
    return None


def drop_remote(tmem: Tmem, ref: RemoteRef) -> bool:
    """Forget a remote page and queue the flush of the peer's copy (ephemeral pages only may be
    given up like this). False if the key no longer holds that remote page."""
    obj, handle = _current(tmem, ref)
    if obj is None or handle is None or not handle & REMOTE:
        return False
    if tmem._remote.version(handle) != ref.version:
        return False
    obj.pop(ref.index)
    tmem._release(obj, ref.index, handle)
    return True


def repatriate(tmem: Tmem, ref: RemoteRef, fetched: PackedPage) -> bool:
    """Bring a fetched remote page home: a local page with the same version replaces the
    handle, and the flush of the peer's copy is queued (a replica elsewhere stays the page's
    other copy). False if the handle changed meanwhile or the store has no room (it stays
    remote)."""
    obj, handle = _current(tmem, ref)
    if obj is None or handle is None or not handle & REMOTE:
        return False
    if tmem._remote.version(handle) != ref.version:
        return False
    outcome = tmem._store.create(
        fetched, ref.persistent, ref.version, (obj.obj_id << INDEX_BITS) | ref.index
    )
    if outcome.evicted:
        tmem._forget(outcome.evicted, keep=obj)
    if not isinstance(outcome, Created):
        return False
    node = tmem._remote_remove(handle, ref.persistent)
    obj.replace(ref.index, outcome.slot)
    tmem.remote_flushes.append(RemoteFlush.of(node, ref))
    if ref.persistent:
        tmem._counters["pers_pages_repatriated"] += 1
    return True


def remote_refs(tmem: Tmem, persistent: bool | None = None) -> list[RemoteRef]:
    """Every page held by a peer (of one class, if given)."""
    refs: list[RemoteRef] = []
    for obj in tmem._objects.values():
        if persistent is not None and obj.pool.spec.persistent != persistent:
            continue
        refs.extend(
            tmem._remote_ref(obj, index, slot) for index, slot in obj.items() if slot & REMOTE
        )
    return refs


def drain_flushes(tmem: Tmem) -> list[RemoteFlush]:
    """Take every queued remote flush, oldest first."""
    flushes, tmem.remote_flushes = tmem.remote_flushes, []
    return flushes


def _current(tmem: Tmem, ref: RemoteRef) -> tuple[TmemObject | None, int | None]:
    obj = tmem._objects.get(ref.obj_id)
    return obj, (obj.slot(ref.index) if obj is not None else None)


def drop_handle(obj: TmemObject, index: int, handle: int, tmem: Tmem) -> None:
    """Forget a remote page none of whose copies is left: no flush is queued."""
    tmem._replicas.pop(tmem._remote.version(handle), None)
    obj.pop(index)
    tmem._remote_remove(handle, obj.pool.spec.persistent)
    obj.pool.pages -= 1
    if not obj:
        tmem._unlink_object(obj)
