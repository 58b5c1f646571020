"""Pages this node holds for other nodes (`ramster.holder.foreign`, reference §A5.7, docs/design.md
§5).

The holder side of RAMster, on a real `Tmem` over `ZCache` with no network: pools autocreated per
origin (number and epoch), origin versions kept, the budget shared with local pages (foreign
ephemeral pages evictable, foreign persistent ones not), idempotent flushes with exact "found" lists
(a page flush removes only the version it names, or any with version 0), and batches of one key
arriving out of order. Budgets are computed from the store's own constants. Dropping an origin is in
test_epochs.py, the origin side in tests/unit/remote/test_shipping.py, the RPC mapping in the
integration tests.
"""

from __future__ import annotations

import pytest

from ramster.errors import FailedPrecondition, InvalidArgument, PoolNotFound, ResourceExhausted
from ramster.holder.epochs import records
from ramster.holder.foreign import (
    ForeignPages,
    destroy_foreign_pools,
    flush_foreign_objects,
    flush_foreign_pages,
    get_foreign,
    origin_client,
    origins,
    put_foreign,
)
from ramster.page import PackedPage
from ramster.remote.shipping import take_shipments
from ramster.tmem import PoolSpec, Rejected, RejectReason, Stored
from ramster.tmem.pool import PoolRecord
from tests.support.foreign import (
    ALL,
    EPH_UID,
    OID,
    ORIGIN,
    OTHER,
    PAGE_COST,
    PAGE_SIZE,
    PERS_UID,
    ForeignPage,
    columns,
    fitting_holder,
    foreign,
    foreign_counts,
    holder,
    packed,
    put_foreign_pages,
)


def test_pages_cost_what_the_budgets_assume() -> None:
    assert {len(packed(seed).payload) for seed in range(100)} == {2034}
    assert PAGE_COST == 25 + 2080 + 32


def test_origin_client_names_node_and_epoch() -> None:
    assert origin_client(2, "e2") == "peer:2:e2"
    assert origin_client(2, "e2b") != ORIGIN  # a restarted origin is another client


def test_put_foreign_autocreates_one_pool_per_origin_pool() -> None:
    tmem, _ = holder()
    assert put_foreign_pages(tmem.table, ORIGIN, [foreign(0), foreign(1, persistent=True)]) == [
        Stored(1000),
        Stored(1001),
    ]
    assert put_foreign_pages(tmem.table, OTHER, [foreign(0)]) == [Stored(1000)]

    assert origins(tmem.table) == [ORIGIN, OTHER]
    counters = tmem.counters()
    assert counters["client_count"] == 2
    assert counters["pool_count"] == 3
    # The same uid of two origins is two pools.
    assert get_foreign(tmem.table, ORIGIN, [(EPH_UID, OID, 0)]) == [(packed(0), 1000)]
    assert get_foreign(tmem.table, OTHER, [(EPH_UID, OID, 0)]) == [(packed(0), 1000)]
    assert foreign_counts(tmem) == (2, 1)  # a get frees nothing


def test_foreign_pages_keep_the_origin_version() -> None:
    tmem, _ = holder()
    local = tmem.new_pool("app", PoolSpec())
    assert tmem.put("app", local, 1, 0, bytes(PAGE_SIZE)) == Stored(1)

    assert put_foreign_pages(
        tmem.table, ORIGIN, [foreign(0, version=5), foreign(1, version=2**40)]
    ) == [
        Stored(5),
        Stored(2**40),
    ]
    # A duplicate put from the origin replaces the page, with the version it brings.
    assert put_foreign_pages(tmem.table, ORIGIN, [foreign(0, version=9)]) == [Stored(9)]
    assert get_foreign(tmem.table, ORIGIN, [(EPH_UID, OID, 0), (EPH_UID, OID, 1)]) == [
        (packed(0), 9),
        (packed(1), 2**40),
    ]
    assert tmem.put("app", local, 1, 1, bytes(PAGE_SIZE)) == Stored(2)  # local versions go on
    assert foreign_counts(tmem) == (2, 0)


def test_foreign_pages_are_never_shipped_on() -> None:
    tmem, _ = holder()
    put_foreign_pages(
        tmem.table, ORIGIN, [foreign(i, persistent=p) for i in range(3) for p in (False, True)]
    )
    assert take_shipments(tmem.table, False, 64, ALL) == []
    assert take_shipments(tmem.table, True, 64, ALL) == []

    local = tmem.new_pool("app", PoolSpec(persistent=True))
    tmem.put("app", local, 1, 0, bytes(PAGE_SIZE))
    assert [(s.oid, s.index) for s in take_shipments(tmem.table, True, 64, ALL)] == [((1, 0, 0), 0)]


def test_foreign_ephemeral_pages_are_evicted_oldest_first() -> None:
    tmem, store = fitting_holder(pages=32, objects=1)
    assert put_foreign_pages(tmem.table, ORIGIN, [foreign(i) for i in range(32)]) == [
        Stored(1000 + i) for i in range(32)
    ]
    assert store.used_bytes == store.config.memory

    assert put_foreign_pages(tmem.table, ORIGIN, [foreign(32)]) == [Stored(1032)]

    assert store.stats.evicted_eph_zpages == 1
    assert foreign_counts(tmem) == (32, 0)
    keys = [(EPH_UID, OID, i) for i in (0, 1, 32)]
    assert get_foreign(tmem.table, ORIGIN, keys) == [
        None,
        (packed(1), 1001),
        (packed(32), 1032),
    ]


def test_a_persistent_put_evicts_foreign_ephemeral_pages() -> None:
    tmem, store = fitting_holder(pages=32, objects=2, pools=2)
    put_foreign_pages(tmem.table, ORIGIN, [foreign(i) for i in range(16)])
    put_foreign_pages(tmem.table, OTHER, [foreign(i, persistent=True) for i in range(16)])
    assert store.used_bytes == store.config.memory

    assert put_foreign_pages(tmem.table, OTHER, [foreign(16, persistent=True)]) == [Stored(1016)]
    local = tmem.new_pool("app", PoolSpec(persistent=True))
    # A local page needs room for a new object too: one more foreign ephemeral page goes.
    assert tmem.put("app", local, 1, 0, bytes(PAGE_SIZE)) == Stored(1)

    assert store.stats.evicted_eph_zpages == 2
    assert foreign_counts(tmem) == (14, 17)
    assert get_foreign(tmem.table, ORIGIN, [(EPH_UID, OID, 0), (EPH_UID, OID, 1)]) == [None] * 2


def test_a_full_holder_refuses_foreign_persistent_pages() -> None:
    tmem, store = fitting_holder(pages=32, objects=1)
    assert put_foreign_pages(
        tmem.table, ORIGIN, [foreign(i, persistent=True) for i in range(32)]
    ) == [Stored(1000 + i) for i in range(32)]

    assert put_foreign_pages(tmem.table, ORIGIN, [foreign(32, persistent=True)]) == [
        Rejected(RejectReason.NO_SPACE)
    ]
    with pytest.raises(ResourceExhausted) as refused:  # no room for another origin's pool
        put_foreign_pages(tmem.table, OTHER, [foreign(0)])
    assert refused.value.message == (
        "no room for pool 1 of peer:3:e3: this node's budget is full of pages that cannot be "
        "evicted"
    )

    assert store.stats.evicted_eph_zpages == 0
    assert foreign_counts(tmem) == (0, 32)
    keys = [(PERS_UID, OID, i) for i in range(33)]
    assert get_foreign(tmem.table, ORIGIN, keys) == [(packed(i), 1000 + i) for i in range(32)] + [
        None
    ]
    # The refused put left no object behind: the budget is exactly as full as before.
    assert tmem.counters()["obj_count"] == 1
    assert store.used_bytes == store.config.memory


def test_get_foreign_returns_page_and_version_and_keeps_it_until_flushed() -> None:
    tmem, store = holder()
    put_foreign_pages(tmem.table, ORIGIN, [foreign(0), foreign(1, persistent=True)])
    keys = [(EPH_UID, OID, 0), (PERS_UID, OID, 1)]

    assert get_foreign(tmem.table, ORIGIN, keys) == [(packed(0), 1000), (packed(1), 1001)]
    assert get_foreign(tmem.table, ORIGIN, keys) == [(packed(0), 1000), (packed(1), 1001)]
    assert foreign_counts(tmem) == (1, 1)
    flushes = [
        (uid, oid, index, version)
        for (uid, oid, index), version in zip(keys, (1000, 1001), strict=True)
    ]
    assert flush_foreign_pages(tmem.table, ORIGIN, flushes) == [True, True]
    assert get_foreign(tmem.table, ORIGIN, keys) == [None, None]
    assert foreign_counts(tmem) == (0, 0)
    assert (store.stats.eph_zpages, store.stats.pers_zpages) == (0, 0)
    assert tmem.counters()["obj_count"] == 0


def test_get_foreign_of_what_is_not_there_is_none() -> None:
    tmem, _ = holder()
    put_foreign_pages(tmem.table, ORIGIN, [foreign(0)])
    keys = [(EPH_UID, OID, 1), (EPH_UID, (8, 0, 0), 0), (99, OID, 0)]
    assert get_foreign(tmem.table, ORIGIN, keys) == [None, None, None]
    assert get_foreign(tmem.table, OTHER, [(EPH_UID, OID, 0)]) == [None]
    assert foreign_counts(tmem) == (1, 0)


def test_flush_foreign_pages_reports_what_it_found_and_is_idempotent() -> None:
    tmem, _ = holder()
    put_foreign_pages(tmem.table, ORIGIN, [foreign(0), foreign(1), foreign(2, persistent=True)])
    # Each key names the version of the copy to remove, as the origin sends it.
    keys = [(EPH_UID, OID, 0, 1000), (EPH_UID, OID, 5, 1005), (99, OID, 0, 1000)]
    keys.append((PERS_UID, OID, 2, 1002))

    assert flush_foreign_pages(tmem.table, ORIGIN, keys) == [True, False, False, True]
    assert flush_foreign_pages(tmem.table, ORIGIN, keys) == [False, False, False, False]
    assert flush_foreign_pages(tmem.table, OTHER, keys) == [False, False, False, False]
    assert foreign_counts(tmem) == (1, 0)
    assert get_foreign(tmem.table, ORIGIN, [(EPH_UID, OID, 1)]) == [(packed(1), 1001)]


def test_a_stale_page_flush_leaves_a_newer_copy_of_the_key() -> None:
    tmem, store = holder()
    put_foreign_pages(
        tmem.table, ORIGIN, [foreign(0, version=5), foreign(1, persistent=True, version=6)]
    )
    # A newer copy of key 0 reaches the holder before the flush of the old one.
    newer = ForeignPage(EPH_UID, OID, 0, 9, False, packed(50))
    assert put_foreign_pages(tmem.table, ORIGIN, [newer]) == [Stored(9)]
    used = store.used_bytes

    stale = [(EPH_UID, OID, 0, 5), (PERS_UID, OID, 1, 5), (PERS_UID, OID, 1, 7)]
    assert flush_foreign_pages(tmem.table, ORIGIN, stale) == [False, False, False]

    keys = [(EPH_UID, OID, 0), (PERS_UID, OID, 1)]
    assert get_foreign(tmem.table, ORIGIN, keys) == [(packed(50), 9), (packed(1), 6)]
    assert foreign_counts(tmem) == (1, 1)
    assert store.used_bytes == used
    # The flush of exactly the version held removes it, once.
    exact = [(EPH_UID, OID, 0, 9), (PERS_UID, OID, 1, 6)]
    assert flush_foreign_pages(tmem.table, ORIGIN, exact) == [True, True]
    assert flush_foreign_pages(tmem.table, ORIGIN, exact) == [False, False]
    assert get_foreign(tmem.table, ORIGIN, keys) == [None, None]
    assert foreign_counts(tmem) == (0, 0)


def test_a_version_0_page_flush_removes_whatever_copy_is_held() -> None:
    tmem, _ = holder()
    put_foreign_pages(
        tmem.table, ORIGIN, [foreign(0, version=5), foreign(1, persistent=True, version=2**40)]
    )
    put_foreign_pages(tmem.table, ORIGIN, [ForeignPage(EPH_UID, OID, 0, 9, False, packed(50))])
    keys = [(EPH_UID, OID, 0, 0), (PERS_UID, OID, 1, 0), (EPH_UID, OID, 2, 0), (99, OID, 0, 0)]

    assert flush_foreign_pages(tmem.table, ORIGIN, keys) == [True, True, False, False]
    assert flush_foreign_pages(tmem.table, ORIGIN, keys) == [False, False, False, False]
    assert get_foreign(tmem.table, ORIGIN, [(EPH_UID, OID, 0), (PERS_UID, OID, 1)]) == [None] * 2
    assert foreign_counts(tmem) == (0, 0)
    assert tmem.counters()["obj_count"] == 0


def test_flush_foreign_objects_reports_what_it_found_and_is_idempotent() -> None:
    tmem, _ = holder()
    put_foreign_pages(
        tmem.table,
        ORIGIN,
        [foreign(0), foreign(1), foreign(2, oid=8), foreign(3, persistent=True)],
    )
    objects = [(EPH_UID, OID, 0), (EPH_UID, (9, 0, 0), 0), (99, OID, 0), (PERS_UID, OID, 0)]

    assert flush_foreign_objects(tmem.table, ORIGIN, objects) == [True, False, False, True]
    assert flush_foreign_objects(tmem.table, ORIGIN, objects) == [False, False, False, False]
    assert flush_foreign_objects(tmem.table, OTHER, objects) == [False, False, False, False]
    assert foreign_counts(tmem) == (1, 0)
    assert tmem.counters()["obj_count"] == 1


def test_an_object_flush_up_to_a_version_leaves_the_newer_copies_of_its_pages() -> None:
    tmem, _ = holder()
    put_foreign_pages(
        tmem.table, ORIGIN, [foreign(n, persistent=True, version=5 + n) for n in range(3)]
    )
    # The origin flushed the object at version 7, then put page 1 again: that copy came first.
    newer = ForeignPage(PERS_UID, OID, 1, 9, True, packed(50))
    assert put_foreign_pages(tmem.table, ORIGIN, [newer]) == [Stored(9)]

    assert flush_foreign_objects(tmem.table, ORIGIN, [(PERS_UID, OID, 7)]) == [True]

    keys = [(PERS_UID, OID, n) for n in range(3)]
    assert get_foreign(tmem.table, ORIGIN, keys) == [None, (packed(50), 9), None]
    assert foreign_counts(tmem) == (0, 1)
    assert flush_foreign_objects(tmem.table, ORIGIN, [(PERS_UID, OID, 7)]) == [False]
    assert flush_foreign_objects(tmem.table, ORIGIN, [(PERS_UID, OID, 0)]) == [True]
    assert foreign_counts(tmem) == (0, 0)
    assert tmem.counters()["obj_count"] == 0


def test_destroy_foreign_pools_reports_what_it_found_and_is_idempotent() -> None:
    tmem, store = holder()
    put_foreign_pages(tmem.table, ORIGIN, [foreign(0), foreign(1), foreign(2, persistent=True)])
    put_foreign_pages(tmem.table, OTHER, [foreign(0)])

    assert destroy_foreign_pools(tmem.table, ORIGIN, [EPH_UID, 99]) == [True, False]
    assert origins(tmem.table) == [ORIGIN, OTHER]
    assert destroy_foreign_pools(tmem.table, ORIGIN, [EPH_UID, 99, PERS_UID]) == [
        False,
        False,
        True,
    ]
    assert origins(tmem.table) == [OTHER]  # an origin without pools is forgotten
    assert destroy_foreign_pools(tmem.table, ORIGIN, [EPH_UID, PERS_UID]) == [False, False]

    assert foreign_counts(tmem) == (1, 0)
    assert (store.stats.eph_zpages, store.stats.pers_zpages) == (1, 0)
    assert tmem.counters()["pool_count"] == 1
    assert tmem.table.elsewhere.flushes == []


def test_foreign_counters_follow_every_change() -> None:
    tmem, _ = holder()
    assert foreign_counts(tmem) == (0, 0)
    put_foreign_pages(tmem.table, ORIGIN, [foreign(i) for i in range(3)])
    put_foreign_pages(tmem.table, ORIGIN, [foreign(i, persistent=True) for i in range(4)])
    put_foreign_pages(tmem.table, OTHER, [foreign(0, persistent=True)])
    assert foreign_counts(tmem) == (3, 5)

    put_foreign_pages(tmem.table, ORIGIN, [foreign(0)])  # a duplicate is still one page
    assert foreign_counts(tmem) == (3, 5)
    flush_foreign_pages(tmem.table, ORIGIN, [(PERS_UID, OID, 0, 1000)])
    assert foreign_counts(tmem) == (3, 4)
    flush_foreign_pages(tmem.table, ORIGIN, [(EPH_UID, OID, 1, 0)])
    assert foreign_counts(tmem) == (2, 4)
    flush_foreign_objects(tmem.table, ORIGIN, [(EPH_UID, OID, 0)])
    assert foreign_counts(tmem) == (0, 4)
    destroy_foreign_pools(tmem.table, OTHER, [PERS_UID])
    assert foreign_counts(tmem) == (0, 3)


@pytest.mark.parametrize(
    ("second", "message"),
    [
        (
            ForeignPage(EPH_UID, OID, 1, 1, True, packed(1)),
            "origin pool 1 of peer:2:e2 is ephemeral private page_size=4096, "
            "not persistent private page_size=4096",
        ),
        (
            ForeignPage(EPH_UID, OID, 1, 1, False, PackedPage(b"\1", True, 8192)),
            "origin pool 1 of peer:2:e2 is ephemeral private page_size=4096, "
            "not ephemeral private page_size=8192",
        ),
    ],
    ids=["persistence", "page_size"],
)
def test_a_pool_spec_mismatch_is_refused(second: ForeignPage, message: str) -> None:
    tmem, _ = holder()
    put_foreign_pages(tmem.table, ORIGIN, [foreign(0)])

    with pytest.raises(FailedPrecondition) as caught:
        put_foreign_pages(tmem.table, ORIGIN, [second])
    assert caught.value.message == message
    assert foreign_counts(tmem) == (1, 0)
    assert put_foreign_pages(tmem.table, OTHER, [second]) == [
        Stored(1)
    ]  # another origin's pool 1 is free


def test_a_pool_spec_mismatch_stores_nothing_of_the_batch() -> None:
    tmem, store = holder()
    put_foreign_pages(tmem.table, ORIGIN, [foreign(0)])
    used = store.used_bytes
    batch = [foreign(1), ForeignPage(EPH_UID, OID, 2, 2, True, packed(2))]

    with pytest.raises(FailedPrecondition) as caught:
        put_foreign_pages(tmem.table, ORIGIN, batch)
    assert caught.value.message == (
        "origin pool 1 of peer:2:e2 is ephemeral private page_size=4096, "
        "not persistent private page_size=4096"
    )
    assert foreign_counts(tmem) == (1, 0)
    assert get_foreign(tmem.table, ORIGIN, [(EPH_UID, OID, 1)]) == [None]
    assert store.used_bytes == used


def test_a_pool_record_of_another_page_size_than_the_held_pool_is_ignored() -> None:
    """The record would make the holder read its pages, and a restarted origin restore them, as
    pages of the record's size."""
    tmem, _ = holder()
    put_foreign_pages(tmem.table, ORIGIN, [foreign(0, persistent=True)])
    small = PoolRecord(PERS_UID, "app", 0, PoolSpec(persistent=True, page_size=512))
    assert put_foreign_pages(tmem.table, ORIGIN, [foreign(1, persistent=True)], [small]) == [
        Stored(1001)
    ]
    pages = get_foreign(tmem.table, ORIGIN, [(PERS_UID, OID, 0), (PERS_UID, OID, 1)])
    assert pages == [(packed(0), 1000), (packed(1), 1001)]
    assert records(tmem.table._clients[ORIGIN].values()) == []  # no owner was noted either


def test_a_local_client_cannot_reach_foreign_pages() -> None:
    tmem, _ = holder()
    put_foreign_pages(tmem.table, ORIGIN, [foreign(0), foreign(1, persistent=True)])

    with pytest.raises(PoolNotFound) as caught:
        tmem.get(ORIGIN, EPH_UID, OID, 0)
    assert caught.value.message == "pool_id 1 does not exist for client 'peer:2:e2'"
    with pytest.raises(PoolNotFound) as caught:
        tmem.flush_page(ORIGIN, PERS_UID, OID, 1)
    assert caught.value.message == "pool_id 2 does not exist for client 'peer:2:e2'"
    with pytest.raises(PoolNotFound):
        tmem.destroy_pool(ORIGIN, EPH_UID)
    with pytest.raises(InvalidArgument) as refused:
        tmem.new_pool(ORIGIN, PoolSpec())
    assert refused.value.message == (
        "client 'peer:2:e2' is invalid: expected a name not starting with 'peer:' (kept for peers)"
    )
    assert foreign_counts(tmem) == (1, 1)
    assert tmem.counters()["pool_count"] == 2
    assert get_foreign(tmem.table, ORIGIN, [(EPH_UID, OID, 0)]) == [(packed(0), 1000)]


def test_a_late_put_of_an_older_version_keeps_the_newer_copy() -> None:
    """With two batches in flight, the copies of one key in both can reach the holder out of
    order: the older version must not replace the newer, so the old copy's orphan flush (which
    names exactly that older version) leaves the key's newer copy in place."""
    tmem, _ = holder()
    put_foreign_pages(
        tmem.table, ORIGIN, [ForeignPage(PERS_UID, OID, 0, 9, True, packed(50))]
    )  # batch 3
    put_foreign_pages(
        tmem.table, ORIGIN, [ForeignPage(PERS_UID, OID, 0, 5, True, packed(0))]
    )  # batch 1, late
    flush_foreign_pages(tmem.table, ORIGIN, [(PERS_UID, OID, 0, 5)])  # batch 1's orphan flush

    # The origin's handle names version 9 on this holder.
    assert get_foreign(tmem.table, ORIGIN, [(PERS_UID, OID, 0)]) == [(packed(50), 9)]


def test_pages_as_columns_are_stored_as_the_same_pages_one_by_one() -> None:
    """A lean put reaches the holder as columns (`ForeignPages`): pages of two pools mixed,
    and a late older version of a key, stored exactly as the same pages one object each."""
    pages = [
        foreign(0, persistent=True),
        foreign(1),
        ForeignPage(PERS_UID, OID, 0, 999, True, packed(99)),  # older than the first: kept out
        foreign(2, persistent=True),
    ]
    batch = ForeignPages(
        pool_uids=[PERS_UID, EPH_UID, PERS_UID, PERS_UID],
        persistent=[True, False, True, True],
        keys=[(OID, 0), (OID, 1), (OID, 0), (OID, 2)],
        versions=[1000, 1001, 999, 1002],
        pages=[packed(0), packed(1), packed(99), packed(2)],
    )
    assert columns(pages) == batch
    assert len(batch) == 4
    by_columns, one_by_one = holder(), holder()
    expected = [Stored(1000), Stored(1001), Stored(1000), Stored(1002)]
    assert put_foreign(by_columns[0].table, ORIGIN, batch) == expected
    assert put_foreign_pages(one_by_one[0].table, ORIGIN, pages) == expected
    keys = [(PERS_UID, OID, 0), (EPH_UID, OID, 1), (PERS_UID, OID, 2), (EPH_UID, OID, 0)]
    held = [(packed(0), 1000), (packed(1), 1001), (packed(2), 1002), None]
    for tmem, _ in (by_columns, one_by_one):
        assert get_foreign(tmem.table, ORIGIN, keys) == held
        assert foreign_counts(tmem) == (1, 2)
        assert tmem.counters()["pool_count"] == 2
    assert by_columns[1].used_bytes == one_by_one[1].used_bytes


def test_a_pool_spec_mismatch_in_columns_stores_nothing_of_the_batch() -> None:
    """The pool of each page is looked up once per (uid, class, page size) of a batch: a page
    whose pool is of another class still refuses the whole batch, naming it."""
    tmem, store = holder()
    put_foreign_pages(tmem.table, ORIGIN, [foreign(0)])
    used = store.used_bytes
    batch = columns([foreign(1), foreign(2), ForeignPage(EPH_UID, OID, 3, 3, True, packed(3))])

    with pytest.raises(FailedPrecondition) as caught:
        put_foreign(tmem.table, ORIGIN, batch)
    assert caught.value.message == (
        "origin pool 1 of peer:2:e2 is ephemeral private page_size=4096, "
        "not persistent private page_size=4096"
    )
    assert foreign_counts(tmem) == (1, 0)
    assert get_foreign(tmem.table, ORIGIN, [(EPH_UID, OID, 1), (EPH_UID, OID, 2)]) == [None, None]
    assert store.used_bytes == used
