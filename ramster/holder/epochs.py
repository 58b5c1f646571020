"""What a restarted or departed origin asks of this holder, by origin number (docs/design.md §6).

A holder keeps foreign pages per origin number and epoch (`ramster.holder.foreign`). When an origin
starts again under a new epoch it picks the latest earlier epoch any peer holds, and each peer
adopts that epoch's persistent pages under the new one (`adopt`), dropping everything else it
held for that number, and lists what it adopted (`records`, `held_keys`); an origin gone for good
is forgotten (`forget_origin`). Pure. Not here: the origin taking the listed pages back
(`ramster.remote.restore`), the Recover and Forget calls (`ramster.rpc.peer_service`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from ramster.holder.foreign import origin_client, origins
from ramster.tmem.elsewhere import REMOTE, Elsewhere
from ramster.tmem.keys import Oid
from ramster.tmem.pool import Pool, PoolRecord
from ramster.tmem.table import FOREIGN_PREFIX, PageTable

HeldKey = tuple[int, Oid, int, int]
"""(origin pool uid, oid, index, version) of a page a holder keeps."""


def held_epochs(table: PageTable[Elsewhere], number: int) -> list[str]:
    """The epochs of origin `number` this node holds pages for."""
    prefix = f"{FOREIGN_PREFIX}{number}:"
    return sorted(c.removeprefix(prefix) for c in table.client_names(prefix))


def adopt(
    table: PageTable[Elsewhere], number: int, keep: Sequence[str], current: str
) -> list[Pool]:
    """Move the persistent pages of origin `number`'s epochs `keep` (oldest first) under its
    `current` epoch, and drop every other page held for that number (except the current
    epoch's): an epoch the origin does not name is not its own. A key held under several epochs
    keeps its newest version. Returns the pools adopted."""
    into = origin_client(number, current)
    order = {epoch: n for n, epoch in enumerate(keep)}
    held = [epoch for epoch in held_epochs(table, number) if epoch != current]
    adopted: dict[int, Pool] = {}
    # The newest epoch first: its pools move whole, older ones fill in what it lacks.
    for epoch in sorted(held, key=lambda e: order.get(e, -1), reverse=True):
        for uid, pool in table.remove_client(origin_client(number, epoch)).items():
            kept = table.client_pools(into).get(uid)
            if epoch not in order or not pool.spec.persistent:
                table.drop_pool(pool)
            elif kept is None:
                table.place_pool(into, uid, pool)
                adopted[uid] = pool
            elif uid in adopted:  # adopted from a newer epoch: older pages fill in
                _fill_in(table, pool, kept)
                table.drop_pool(pool)
            else:  # the current epoch made this pool already: it wins
                table.drop_pool(pool)
    return list(adopted.values())


def _fill_in(table: PageTable[Elsewhere], older: Pool, newer: Pool) -> None:
    """Copy into `newer` every page of `older` it lacks or holds in an older version."""
    for oid, obj in list(older.objects.items()):
        for index, _ in list(obj.items()):
            found = table.stored_page(older, oid, index)
            if found is None:
                continue
            page, version = found
            held = table.stored_page(newer, oid, index)
            if held is None or held[1] < version:
                table.put_pool_page(newer, oid, index, page, version=version)


def held_origins(table: PageTable[Elsewhere]) -> set[int]:
    """The numbers of the origins this node holds pools for, whatever their epoch."""
    return {int(c.removeprefix(FOREIGN_PREFIX).partition(":")[0]) for c in origins(table)}


def forget_origin(table: PageTable[Elsewhere], number: int, current: str) -> int:
    """Drop every page held for origin `number` of an epoch before `current` (every epoch if
    `current` is "": the origin left for good); return how many."""
    dropped = 0
    for epoch in held_epochs(table, number):
        if epoch == current:
            continue
        for pool in table.remove_client(origin_client(number, epoch)).values():
            dropped += table.drop_pool(pool)
    return dropped


def records(pools: Iterable[Pool]) -> list[PoolRecord]:
    """What a holder knows of who owns each pool (pools without a record are left out)."""
    return [
        PoolRecord(pool.uid, pool.owner[0], pool.owner[1], pool.spec)
        for pool in pools
        if pool.owner is not None
    ]


def held_keys(pools: Iterable[Pool], table: PageTable[Elsewhere]) -> Iterator[HeldKey]:
    """Every page of `pools` with its version."""
    version = table.slot_version
    for pool in pools:
        for obj in list(pool.objects.values()):
            for index, slot in list(obj.items()):  # the caller may yield between pages
                if not slot & REMOTE:
                    yield pool.uid, obj.oid, index, version(slot)
