"""A restarted node taking its persistent pages back from its peers: the origin's half
(docs/design.md §6).

Each holder adopts the pages of this node's latest earlier epoch and lists them
(`ramster.holder.epochs`); the origin then `restore`s what they list: pools (unclaimed until
their client asks for a pool of the same spec again) and remote handles, the newest version of
each key winning. Versions and pool uids continue above the recovered ones. Pure; it changes
the tree through its public surface only (`Tmem.install_recovered`, the page table, the
`RemoteIndex`). Not here: asking the holders (the remote layer, at start).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ramster.holder.epochs import HeldKey, records
from ramster.remote.handles import OriginTable, OriginTmem, RemoteFlush
from ramster.tmem.elsewhere import REMOTE
from ramster.tmem.keys import Oid
from ramster.tmem.pool import Pool, PoolRecord

MAX_VERSION = 1 << 62
"""Versions count microseconds since 1970 from a node's start, then puts: a peer naming a higher
one is not believed (it would leave no room for the next puts)."""


def own_records(tmem: OriginTmem, uids: Iterable[int]) -> list[PoolRecord]:
    """The records of this node's pools `uids`, for the peers that hold their pages."""
    wanted = set(uids)
    return records(pool for pool in tmem.table.own_pools() if pool.uid in wanted)


def restore(
    tmem: OriginTmem, holder: int, pool_records: Sequence[PoolRecord], keys: Sequence[HeldKey]
) -> int:
    """Take back the pages peer `holder` keeps for this node: each key becomes a remote handle to
    it, or its replica if another peer holds the same version; an older copy of a key is
    flushed. Pages of pools without a record cannot be placed and are flushed. Returns how many
    pages became this node's again."""
    by_uid = {pool.uid: pool for pool in tmem.table.own_pools()}
    for record in pool_records:
        if record.uid not in by_uid:
            pool = tmem.install_recovered(record)
            if pool is not None:
                by_uid[record.uid] = pool
    restored = 0
    for uid, oid, index, version in keys:
        pool = by_uid.get(uid)
        if pool is None or not pool.spec.persistent or not 0 < version <= MAX_VERSION:
            tmem.table.elsewhere.flushes.append(RemoteFlush(holder, uid, oid, index, version))
            continue
        tmem.table.continue_after(version=version)
        restored += take_back(tmem.table, holder, pool, oid, index, version)
    if by_uid:
        tmem.table.continue_after(pool_uid=max(by_uid))
    return restored


def take_back(
    table: OriginTable, holder: int, pool: Pool, oid: Oid, index: int, version: int
) -> int:
    """A copy peer `holder` kept of this node's page at the key through a restart
    (`ramster.remote.restore`) becomes a remote handle to it, or its replica if another peer
    holds the same version; an older copy of the key is flushed, and so is this holder's if the
    key has a newer copy or two already. Returns 1 if the page became this node's again."""
    remote = table.elsewhere
    obj = pool.objects.get(oid)
    if obj is None:
        obj = table.new_object(pool, oid)
    slot = obj.slot(index)
    if slot is not None:
        held = table.slot_version(slot)
        replica = remote.replicas.get(held)
        if held == version and slot & REMOTE:
            if holder in (remote.handles.node(slot), replica):
                return 0
            if replica is None:
                remote.replicas[version] = holder
                return 0
        if held >= version:  # a newer copy, or a third one: this holder's goes
            remote.flushes.append(RemoteFlush(holder, pool.uid, oid, index, version))
            return 0
        obj.pop(index)
        table.free_slot(obj, index, slot)  # the older copies are flushed
        pool.count(-1)
    obj.insert(index, remote.add(holder, version, True))
    pool.count(1)
    return 1
