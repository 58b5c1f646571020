"""What a restarted or departed origin asks of this holder, by origin number (DESIGN §6).

A holder keeps foreign pages per origin number and epoch (`ramster.holder.foreign`). When an origin
starts again under a new epoch it picks the latest earlier epoch any peer holds, and each peer
adopts that epoch's persistent pages under the new one (`adopt`), dropping everything else it
held for that number, and lists what it adopted (`records`, `held_keys`); an origin gone for good
is forgotten (`forget_origin`). Pure. Not here: the origin taking the listed pages back
(`ramster.remote.restore`), the Recover and Forget calls (`ramster.rpc.peer_service`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

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


def adopt(table: PageTable[Elsewhere], number: int, keep: str, current: str) -> list[Pool]:
    """Move the persistent pools of epoch `keep` of origin `number` under its `current` epoch,
    and drop every other page held for that number (except the current epoch's). Returns the
    pools moved."""
    moved: list[Pool] = []
    into = origin_client(number, current)
    for epoch in held_epochs(table, number):
        if epoch == current:
            continue
        pools = table.remove_client(origin_client(number, epoch))
        for uid, pool in pools.items():
            if epoch == keep and pool.spec.persistent and uid not in table.client_pools(into):
                table.place_pool(into, uid, pool)
                moved.append(pool)
            else:
                table.drop_pool(pool)
    return moved


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
