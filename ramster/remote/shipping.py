"""Moving this node's pages to peers and back: the pure half of RAMster (reference §A5.2 to §A5.6).

Pure decisions over a page table and its `RemoteIndex`; the remote layer (`ramster.remote`) does
the I/O and calls back here. Shipping takes the oldest remotable pages; a shipped page becomes a
remote handle only if it is still the page shipped (same slot, same version) — otherwise the
peer's copy is an orphan and a flush for it is queued. A fetched page is checked again before it
is handed out: flushed meanwhile ⇒ miss; overwritten meanwhile ⇒ the newer local page wins. A
page no holder answered for is a miss for good if ephemeral (its copies are flushed), and stays
if persistent. No get frees here: a get that frees ends with `Tmem.take`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ramster.page import PackedPage
from ramster.remote.handles import OriginTable, RemoteFlush, RemoteRef, Shipment, Unanswered
from ramster.tmem import Created, Hit
from ramster.tmem.elsewhere import REMOTE
from ramster.tmem.pool import TmemObject
from ramster.tmem.table import INDEX_BITS, INDEX_MASK


def take_shipments(
    table: OriginTable, persistent: bool, max_pages: int, max_bytes: int
) -> list[Shipment]:
    """The oldest remotable pages of a class: at most `max_pages`, and no more once `max_bytes`
    packed bytes are taken (pages are taken one by one, so none loses its place)."""
    store, replicas = table.store, table.elsewhere.replicas
    shipments: list[Shipment] = []
    size = 0
    while len(shipments) < max_pages and size < max_bytes:
        taken = store.oldest_remotable(persistent, 1)
        if not taken:
            break
        slot = taken[0]
        backref = store.backref(slot)
        obj = table.objects[backref >> INDEX_BITS]
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
                replica=replicas.get(version) if persistent else None,
            )
        )
    return shipments


def complete_shipments(
    table: OriginTable, node: int, shipments: Sequence[Shipment], stored: Sequence[bool]
) -> int:
    """Swap each page the peer `node` stored for a remote handle (compare-and-swap on slot and
    version); requeue the ones it refused. Return how many became remote."""
    store, remote = table.store, table.elsewhere
    counts = remote.counts
    remoted = 0
    for shipment, ok in zip(shipments, stored, strict=True):
        obj, slot = table.at(shipment.obj_id, shipment.index)
        unchanged = (
            obj is not None
            and slot == shipment.slot
            and not slot & REMOTE
            and store.version(slot) == shipment.version
        )
        kind = "pers" if shipment.persistent else "eph"
        if ok and unchanged and remote.replicas.get(shipment.version) == node:
            # The page's replica went to that peer meanwhile (repair): the copy shipped is the
            # replica itself (same version); the page stays here, the peer keeps its copy.
            counts[f"{kind}_pages_remote_failed"] += 1
            store.requeue(shipment.slot)
            continue
        if not ok:
            counts[f"{kind}_pages_remote_failed"] += 1
            if unchanged:
                store.requeue(shipment.slot)
            continue
        if not unchanged:  # flushed or overwritten while in flight: the peer's copy is stale
            remote.flushes.append(RemoteFlush.of(node, shipment))
            continue
        assert obj is not None
        store.free(shipment.slot)
        obj.replace(shipment.index, remote.add(node, shipment.version, shipment.persistent))
        counts[f"{kind}_pages_remoted"] += 1
        remoted += 1
    return remoted


def return_shipments(table: OriginTable, shipments: Sequence[Shipment]) -> None:
    """Give back pages taken but not sent (no peer may take them): each keeps its place in the
    shipping order if it is unchanged."""
    store = table.store
    for shipment in shipments:
        _, slot = table.at(shipment.obj_id, shipment.index)
        unchanged = slot is not None and slot == shipment.slot and not slot & REMOTE
        if unchanged and store.version(shipment.slot) == shipment.version:
            store.requeue(shipment.slot)


def localify(
    table: OriginTable,
    ref: RemoteRef,
    answer: tuple[PackedPage, int] | Unanswered | None,
    home: bool = False,
) -> Hit | Unanswered | None:
    """What a get of `ref` answers once its holders replied `answer`: the page and the version
    a holder held; `Unanswered`, no holder answered in time; None, every holder answered without
    the page. Frees nothing: a get that frees ends with `Tmem.take`. With `home` (the store has
    room) a persistent page read from a peer comes home (`repatriate`)."""
    counts = table.elsewhere.counts
    kind = "pers" if ref.persistent else "eph"
    obj, handle = table.at(ref.obj_id, ref.index)
    if obj is None or handle is None:  # flushed while waiting: nothing is resurrected
        counts[f"remote_{kind}_pages_unsucc_get"] += 1
        return None
    if not handle & REMOTE:  # put again while waiting: the newer local page wins
        counts[f"remote_{kind}_pages_unsucc_get"] += 1
        page = table.store.read_packed(handle, ref.page_size)
        return Hit(page, obj.obj_id, ref.index, table.store.version(handle))
    current = table.elsewhere.version(handle)
    if isinstance(answer, tuple) and answer[1] == current:
        # The peer holds what the handle says: the version asked for, or a newer one shipped
        # to the same peer while the request was out.
        counts[f"remote_{kind}_pages_succ_get"] += 1
        if home and ref.persistent and current == ref.version:
            repatriate(table, ref, answer[0])
        return Hit(answer[0], obj.obj_id, ref.index, current)
    if current != ref.version:  # re-put and re-shipped meanwhile: a later get will find it
        counts[f"remote_{kind}_pages_unsucc_get"] += 1
        return None
    if isinstance(answer, Unanswered):
        if ref.persistent:  # the page is not gone: it stays, to be asked for again
            return answer
        # An ephemeral page may vanish, but a miss must stay a miss (get-get coherency): the
        # record goes and the holder is told to drop its copy.
        counts["remote_eph_pages_unsucc_get"] += 1
        drop_remote(table, ref)
        return None
    counts[f"remote_{kind}_pages_unsucc_get"] += 1
    if ref.persistent:
        counts["remote_pers_pages_lost"] += 1
    drop_handle(table, obj, ref.index, handle)
    return None


def drop_remote(table: OriginTable, ref: RemoteRef) -> bool:
    """Forget a remote page and queue the flush of the peer's copy (ephemeral pages only may be
    given up like this). False if the key no longer holds that remote page."""
    obj, handle = table.at(ref.obj_id, ref.index)
    if obj is None or handle is None or not handle & REMOTE:
        return False
    if table.elsewhere.version(handle) != ref.version:
        return False
    obj.pop(ref.index)
    table.release(obj, ref.index, handle)
    return True


def repatriate(table: OriginTable, ref: RemoteRef, fetched: PackedPage) -> bool:
    """Bring a fetched remote page home: a local page with the same version replaces the
    handle, and the flush of the peer's copy is queued (a replica elsewhere stays the page's
    other copy). False if the handle changed meanwhile or the store has no room (it stays
    remote)."""
    remote = table.elsewhere
    obj, handle = table.at(ref.obj_id, ref.index)
    if obj is None or handle is None or not handle & REMOTE:
        return False
    if remote.version(handle) != ref.version:
        return False
    outcome = table.store_page(obj, ref.index, fetched, ref.version)
    if not isinstance(outcome, Created):
        return False
    node = remote.remove(handle, ref.persistent)
    obj.replace(ref.index, outcome.slot)
    remote.flushes.append(RemoteFlush.of(node, ref))
    if ref.persistent:
        remote.counts["pers_pages_repatriated"] += 1
    return True


def remote_refs(table: OriginTable, persistent: bool | None = None) -> list[RemoteRef]:
    """Every page held by a peer (of one class, if given)."""
    away = table.elsewhere.away
    refs: list[RemoteRef] = []
    for obj in table.objects.values():
        if persistent is not None and obj.pool.spec.persistent != persistent:
            continue
        refs.extend(away(obj, index, slot) for index, slot in obj.items() if slot & REMOTE)
    return refs


def drop_handle(table: OriginTable, obj: TmemObject, index: int, handle: int) -> None:
    """Forget a remote page none of whose copies is left: no flush is queued."""
    remote = table.elsewhere
    remote.replicas.pop(remote.version(handle), None)
    obj.pop(index)
    remote.remove(handle, obj.pool.spec.persistent)
    table.page_gone(obj)
