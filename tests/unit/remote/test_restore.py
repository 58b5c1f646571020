"""A restarted node taking its persistent pages back from its peers (`ramster.remote.restore`,
docs/design.md §6), in the pure core: each holder adopts and lists the pages of the latest earlier
epoch (`ramster.holder.epochs`, on a second `Tmem`), and the origin restores pools and remote
handles from the lists, the newest version of each key winning. The async layer that asks the
holders is in tests/unit/remote/.
"""

from __future__ import annotations

import uuid

from ramster.holder.epochs import adopt, held_epochs, held_keys
from ramster.holder.foreign import origin_client
from ramster.remote.handles import RemoteFlush, origin_tmem
from ramster.remote.restore import restore
from ramster.remote.shipping import complete_shipments, take_shipments
from ramster.tmem import PoolSpec, Stored, Tmem
from ramster.tmem.pool import PoolRecord
from ramster.zcache import ZCache, ZcacheConfig
from tests.support.copies import ALL, APP, PERSISTENT, B, C, D, host, page, stored, where
from tests.support.foreign import ForeignPage, put_foreign_pages


def ship_all(origin: Tmem, holder: Tmem, name: str, node: int) -> None:
    """Ship every local persistent page of `origin` to `holder` (node `node`), with records."""
    shipments = take_shipments(origin.table, True, 1000, ALL)
    records = [PoolRecord(s.pool_uid, APP, 0, PERSISTENT) for s in shipments[:1]]
    pages = [ForeignPage(s.pool_uid, s.oid, s.index, s.version, True, s.page) for s in shipments]
    put_foreign_pages(holder.table, name, pages, records)
    complete_shipments(origin.table, node, shipments, [True] * len(shipments))


def test_a_restarted_node_takes_back_its_pages_and_its_client_gets_its_pool_again() -> None:
    old = host()
    pool = old.new_pool(APP, PERSISTENT)
    stored(old, pool, [(1, 0), (1, 1), (2, 5)])
    holder = host()
    ship_all(old, holder, origin_client(1, "e1"), B)
    put_foreign_pages(
        holder.table, origin_client(1, "e0"), []
    )  # nothing, but an epoch entry is harmless

    assert held_epochs(holder.table, 1) == ["e1"]
    pools = adopt(holder.table, 1, keep=["e1"], current="e2")
    assert held_epochs(holder.table, 1) == ["e2"]
    keys = sorted(held_keys(pools, holder.table))
    assert keys == [(1, (1, 0, 0), 0, 1), (1, (1, 0, 0), 1, 2), (1, (2, 0, 0), 5, 3)]

    new = origin_tmem(ZCache(ZcacheConfig(memory=4 << 20)), first_version=1)
    records = [PoolRecord(1, APP, pool, PERSISTENT)]
    assert restore(new, B, records, keys) == 3
    assert new.new_pool(APP, PERSISTENT) == pool  # claimed, not a new one
    assert new.new_pool(APP, PERSISTENT) == pool + 1  # the next is new
    refs = new.get_many_packed(APP, pool, [((1, 0, 0), 1)])
    assert [(r.node, r.version) for r in refs] == [(B, 2)]  # type: ignore[union-attr]
    put = new.put(APP, pool, 9, 0, page(1))
    assert put == Stored(4)  # versions go on above the recovered ones


def test_restoring_from_two_holders_makes_one_the_replica_and_flushes_an_older_copy() -> None:
    new = host()
    records = [PoolRecord(5, APP, 0, PERSISTENT)]
    assert restore(new, B, records, [(5, (1, 0, 0), 0, 10), (5, (1, 0, 0), 1, 11)]) == 2
    assert restore(new, C, records, [(5, (1, 0, 0), 0, 10), (5, (1, 0, 0), 1, 9)]) == 0
    assert where(new) == {(1, 0): (B, C), (1, 1): (B, None)}
    assert new.table.elsewhere.drain() == [RemoteFlush(C, 5, (1, 0, 0), 1, 9)]
    # A newer copy on a third holder wins over both.
    assert restore(new, D, records, [(5, (1, 0, 0), 0, 12)]) == 1
    assert where(new) == {(1, 0): (D, None), (1, 1): (B, None)}
    assert new.table.elsewhere.drain() == [
        RemoteFlush(C, 5, (1, 0, 0), 0, 10),
        RemoteFlush(B, 5, (1, 0, 0), 0, 10),
    ]


def test_pages_of_a_pool_without_a_record_are_flushed_not_guessed() -> None:
    new = host()
    assert restore(new, B, [], [(7, (1, 0, 0), 0, 3)]) == 0
    assert new.table.elsewhere.drain() == [RemoteFlush(B, 7, (1, 0, 0), 0, 3)]


def test_a_shared_persistent_pool_comes_back_for_the_first_client_that_joins_it() -> None:
    shared = PoolSpec(persistent=True, shared_uuid=uuid.UUID(int=7))
    new = host()
    assert restore(new, B, [PoolRecord(3, "x", 0, shared)], [(3, (1, 0, 0), 0, 5)]) == 1
    pool = new.new_pool("y", shared)
    [ref] = new.get_many_packed("y", pool, [((1, 0, 0), 0)])
    assert (ref.node, ref.version) == (B, 5)  # type: ignore[union-attr]


def test_restore_believes_no_absurd_version_and_no_record_for_a_peer_client() -> None:
    new = host()
    records = [PoolRecord(5, APP, 0, PERSISTENT), PoolRecord(6, "peer:9:e", 0, PERSISTENT)]
    keys = [(5, (1, 0, 0), 0, 2**64 - 1), (5, (1, 0, 0), 1, 7), (6, (1, 0, 0), 0, 8)]
    assert restore(new, B, records, keys) == 1
    assert new.table.elsewhere.drain() == [
        RemoteFlush(B, 5, (1, 0, 0), 0, 2**64 - 1),
        RemoteFlush(B, 6, (1, 0, 0), 0, 8),
    ]
    pool = new.new_pool(APP, PERSISTENT)
    assert new.put(APP, pool, 2, 0, page(1)) == Stored(8)  # versions go on from 7, not 2**64
