"""A restarted node taking its persistent pages back from its peers: the origin's half (DESIGN §6).

Each holder adopts the pages of this node's latest earlier epoch and lists them
(`ramster.holder.epochs`); the origin then `restore`s what they list: pools (unclaimed until
their client asks for a pool of the same spec again) and remote handles, the newest version of
each key winning. Versions and pool uids continue above the recovered ones. Pure; it changes
the tree through the host's public door only (`Tmem.install_recovered`, `copies.take_back`). Not
here: asking the holders (the remote layer, at start).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ramster.holder.epochs import HeldKey, records
from ramster.tmem.copies import take_back
from ramster.tmem.host import Tmem
from ramster.tmem.pool import PoolRecord
from ramster.tmem.remote import RemoteFlush

MAX_VERSION = 1 << 62
"""Versions count microseconds since 1970 from a node's start, then puts: a peer naming a higher
one is not believed (it would leave no room for the next puts)."""


def own_records(tmem: Tmem, uids: Iterable[int]) -> list[PoolRecord]:
    """The records of this node's pools `uids`, for the peers that hold their pages."""
    wanted = set(uids)
    return records(pool for pool in tmem.own_pools() if pool.uid in wanted)


def restore(
    tmem: Tmem, holder: int, pool_records: Sequence[PoolRecord], keys: Sequence[HeldKey]
) -> int:
    """Take back the pages peer `holder` keeps for this node: each key becomes a remote handle to
    it, or its replica if another peer holds the same version; an older copy of a key is
    flushed. Pages of pools without a record cannot be placed and are flushed. Returns how many
    pages became this node's again."""
    by_uid = {pool.uid: pool for pool in tmem.own_pools()}
    for record in pool_records:
        if record.uid not in by_uid:
            pool = tmem.install_recovered(record)
            if pool is not None:
                by_uid[record.uid] = pool
    restored = 0
    for uid, oid, index, version in keys:
        pool = by_uid.get(uid)
        if pool is None or not pool.spec.persistent or not 0 < version <= MAX_VERSION:
            tmem.remote_flushes.append(RemoteFlush(holder, uid, oid, index, version))
            continue
        tmem.continue_after(version=version)
        restored += take_back(tmem, holder, pool, oid, index, version)
    if by_uid:
        tmem.continue_after(pool_uid=max(by_uid))
    return restored
