"""A restarted node taking its persistent pages back from its peers: the origin's half (DESIGN §6).

Each holder adopts the pages of this node's latest earlier epoch and lists them
(`ramster.holder.epochs`); the origin then `restore`s what they list: pools (unclaimed until
their client asks for a pool of the same spec again) and remote handles, the newest version of
each key winning. Versions and pool uids continue above the recovered ones. Pure; a friend of
the host like `ramster.tmem.shipping`. Not here: asking the holders (the remote layer, at
start).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from ramster.holder.epochs import HeldKey, records
from ramster.tmem.host import FOREIGN_PREFIX, Tmem
from ramster.tmem.keys import Oid
from ramster.tmem.pool import Pool, PoolRecord
from ramster.tmem.remote import REMOTE, RemoteFlush

MAX_VERSION = 1 << 62
"""Versions count microseconds since 1970 from a node's start, then puts: a peer naming a higher
one is not believed (it would leave no room for the next puts)."""


def own_records(tmem: Tmem, uids: Iterable[int]) -> list[PoolRecord]:
    """The records of this node's pools `uids`, for the peers that hold their pages."""
    wanted = set(uids)
    return records(pool for pool in _own_pools(tmem) if pool.uid in wanted)


def restore(
    tmem: Tmem, holder: int, pool_records: Sequence[PoolRecord], keys: Sequence[HeldKey]
) -> int:
    """Take back the pages peer `holder` keeps for this node: each key becomes a remote handle to
    it, or its replica if another peer holds the same version; an older copy of a key is
    flushed. Pages of pools without a record cannot be placed and are flushed. Returns how many
    pages became this node's again."""
    by_uid = {pool.uid: pool for pool in _own_pools(tmem)}
    for record in pool_records:
        if record.uid not in by_uid:
            pool = _install(tmem, record)
            if pool is not None:
                by_uid[record.uid] = pool
    restored = 0
    for uid, oid, index, version in keys:
        pool = by_uid.get(uid)
        if pool is None or not pool.spec.persistent or not 0 < version <= MAX_VERSION:
            tmem.remote_flushes.append(RemoteFlush(holder, uid, oid, index, version))
            continue
        tmem._version = max(tmem._version, version)
        restored += _restore_page(tmem, holder, pool, oid, index, version)
    if by_uid:
        tmem._next_pool_uid = max(tmem._next_pool_uid, *by_uid)
    return restored


def _restore_page(tmem: Tmem, holder: int, pool: Pool, oid: Oid, index: int, version: int) -> int:
    obj = pool.objects.get(oid)
    if obj is None:
        obj = tmem._new_object(pool, oid)
    slot = obj.slot(index)
    if slot is not None:
        held = tmem._remote.version(slot) if slot & REMOTE else tmem._store.version(slot)
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


def _install(tmem: Tmem, record: PoolRecord) -> Pool | None:
    """A recovered pool, waiting for its client; None if its place is taken (or the record
    names a client no application may have)."""
    if record.client.startswith(FOREIGN_PREFIX) or not record.client:
        return None
    pool = Pool(record.spec, record.uid, owner=(record.client, record.pool_id))
    uuid = record.spec.shared_uuid
    if uuid is not None:
        if uuid in tmem._shared:
            return None
        pool.refs = 0  # joined by the first client that asks for it
        tmem._shared[uuid] = pool
        return pool
    pools = tmem._clients.setdefault(record.client, {})
    if record.pool_id in pools:
        return None
    pools[record.pool_id] = pool
    tmem._unclaimed.add((record.client, record.pool_id))
    return pool


def _own_pools(tmem: Tmem) -> Iterator[Pool]:
    seen: set[int] = set()
    for client, pools in tmem._clients.items():
        if client.startswith(FOREIGN_PREFIX):
            continue
        for pool in pools.values():
            if pool.uid not in seen:
                seen.add(pool.uid)
                yield pool
    for pool in tmem._shared.values():
        if pool.uid not in seen:
            seen.add(pool.uid)
            yield pool
