"""What a restarted or departed origin asks of its holders (`ramster.holder.epochs`, docs/design.md
§6).

On a real `Tmem` over `ZCache` with no network: adopting the persistent pools of one earlier
epoch under the current one and dropping the rest, and forgetting the earlier epochs of one
origin number. Listing and restoring what was adopted is in tests/unit/remote/test_restore.py.
"""

from __future__ import annotations

from ramster.holder.epochs import adopt, forget_origin, held_epochs, held_keys
from ramster.holder.foreign import get_foreign, origin_client, origins
from ramster.tmem import PoolSpec
from tests.support.foreign import (
    EPH_UID,
    OID,
    ORIGIN,
    OTHER,
    PAGE_SIZE,
    ForeignPage,
    foreign,
    foreign_counts,
    holder,
    packed,
    put_foreign_pages,
)


def test_forget_origin_drops_the_earlier_epochs_of_that_origin_number_only() -> None:
    tmem, store = holder()
    local = tmem.new_pool("app", PoolSpec())
    tmem.put("app", local, 1, 0, bytes(PAGE_SIZE))
    put_foreign_pages(tmem.table, ORIGIN, [foreign(i, persistent=i % 2 == 1) for i in range(5)])
    put_foreign_pages(tmem.table, OTHER, [foreign(0), foreign(1, persistent=True)])
    assert foreign_counts(tmem) == (4, 3)

    assert forget_origin(tmem.table, 2, "e2") == 0  # e2 is the current epoch: kept
    assert forget_origin(tmem.table, 2, "e9") == 5
    assert forget_origin(tmem.table, 2, "e9") == 0

    assert origins(tmem.table) == [OTHER]
    assert foreign_counts(tmem) == (1, 1)
    assert (store.stats.eph_zpages, store.stats.pers_zpages) == (2, 1)
    assert get_foreign(tmem.table, ORIGIN, [(EPH_UID, OID, 0)]) == [None]
    assert get_foreign(tmem.table, OTHER, [(EPH_UID, OID, 0)]) == [(packed(0), 1000)]
    assert tmem.get("app", local, 1, 0) == bytes(PAGE_SIZE)
    assert tmem.table.elsewhere.flushes == []


def test_forget_drops_earlier_epochs_and_adopt_drops_ephemeral_pools() -> None:
    tmem, _ = holder()
    eph = ForeignPage(8, (1, 0, 0), 0, 1, False, packed(1))
    pers = ForeignPage(9, (1, 0, 0), 0, 2, True, packed(2))
    put_foreign_pages(tmem.table, origin_client(1, "e1"), [eph, pers])
    put_foreign_pages(tmem.table, origin_client(1, "e0"), [pers])
    pools = adopt(tmem.table, 1, keep=["e1"], current="e2")
    assert [p.uid for p in pools] == [9]
    assert held_epochs(tmem.table, 1) == ["e2"]
    assert tmem.counters()["foreign_eph_pages"] == 0
    assert forget_origin(tmem.table, 1, "e3") == 1
    assert held_epochs(tmem.table, 1) == []


def test_adopt_takes_every_named_epoch_newest_version_first_and_drops_the_unnamed() -> None:
    tmem, _ = holder()
    page = [ForeignPage(9, (1, 0, 0), i, 10 + i, True, packed(i)) for i in range(3)]
    newer = [ForeignPage(9, (1, 0, 0), 1, 50, True, packed(50))]
    made_up = [ForeignPage(9, (1, 0, 0), i, 99, True, packed(99)) for i in range(3)]
    put_foreign_pages(tmem.table, origin_client(1, "e1"), page)  # the oldest recorded epoch
    put_foreign_pages(tmem.table, origin_client(1, "e2"), newer)  # the latest: index 1 put again
    put_foreign_pages(tmem.table, origin_client(1, "zz"), made_up)  # claimed by nobody's record
    pools = adopt(tmem.table, 1, keep=["e1", "e2"], current="e3")
    assert [p.uid for p in pools] == [9]
    assert held_epochs(tmem.table, 1) == ["e3"]
    keys = [(9, (1, 0, 0), i) for i in range(3)]
    assert get_foreign(tmem.table, origin_client(1, "e3"), keys) == [
        (packed(0), 10),
        (packed(50), 50),
        (packed(2), 12),
    ]
    assert sorted(held_keys(pools, tmem.table)) == [
        (9, (1, 0, 0), 0, 10),
        (9, (1, 0, 0), 1, 50),
        (9, (1, 0, 0), 2, 12),
    ]
    assert tmem.counters()["foreign_pers_pages"] == 3
