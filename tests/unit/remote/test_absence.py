"""Letting go of nodes that left for good (issue 10 item 12), the pure holder part: the clock of
each node's absence from the view (`ramster.remote.absence`) and dropping every page held for an
origin number, whatever its epoch (`ramster.holder.epochs`), on a real `Tmem` with no network."""

from __future__ import annotations

from ramster.holder.epochs import forget_origin, held_origins
from ramster.holder.foreign import get_foreign, origin_client, origins
from ramster.remote.absence import AbsenceClock
from ramster.tmem import PoolSpec
from tests.support.foreign import (
    EPH_UID,
    OID,
    PAGE_SIZE,
    foreign,
    foreign_counts,
    holder,
    put_foreign_pages,
)

GRACE = 60.0


def test_a_node_out_of_the_view_expires_after_the_grace_and_not_before() -> None:
    clock = AbsenceClock()
    assert clock.expired(100.0, GRACE, live={1, 2}, tracked={2, 3}) == []  # 3's clock starts
    assert clock.expired(159.9, GRACE, live={1, 2}, tracked={2, 3}) == []
    assert clock.expired(160.0, GRACE, live={1, 2}, tracked={2, 3}) == [3]
    assert repr(clock) == "<AbsenceClock absent=[3]>"


def test_a_node_seen_again_starts_its_absence_over() -> None:
    clock = AbsenceClock()
    clock.expired(100.0, GRACE, live=set(), tracked={3})
    clock.expired(150.0, GRACE, live={3}, tracked={3})  # restarted: back in the view
    assert clock.expired(200.0, GRACE, live=set(), tracked={3}) == []  # out again at 200
    assert clock.expired(259.0, GRACE, live=set(), tracked={3}) == []
    assert clock.expired(260.0, GRACE, live=set(), tracked={3}) == [3]


def test_no_absence_counts_while_the_view_cannot_be_trusted() -> None:
    clock = AbsenceClock()
    clock.expired(100.0, GRACE, live=set(), tracked={3})
    clock.reset()  # etcd out of reach from 120 to 500: the view is frozen
    assert clock.expired(500.0, GRACE, live=set(), tracked={3}) == []
    assert clock.expired(559.0, GRACE, live=set(), tracked={3}) == []
    assert clock.expired(560.0, GRACE, live=set(), tracked={3}) == [3]


def test_a_node_nothing_is_kept_for_has_no_clock() -> None:
    clock = AbsenceClock()
    clock.expired(100.0, GRACE, live=set(), tracked={3, 4})
    assert clock.expired(100.0, GRACE, live=set(), tracked={4}) == []
    assert repr(clock) == "<AbsenceClock absent=[4]>"
    clock.drop(4)
    assert repr(clock) == "<AbsenceClock absent=[]>"
    assert clock.expired(120.0, GRACE, live=set(), tracked={3}) == []  # 3 starts again at 120


def test_an_origin_that_left_for_good_loses_every_epoch_and_no_other_origin_anything() -> None:
    tmem, store = holder()
    local = tmem.new_pool("app", PoolSpec(persistent=True))
    tmem.put("app", local, 1, 0, bytes(PAGE_SIZE))
    put_foreign_pages(tmem.table, origin_client(2, "e1"), [foreign(0, persistent=True), foreign(1)])
    put_foreign_pages(tmem.table, origin_client(2, "e2"), [foreign(2, persistent=True)])
    put_foreign_pages(tmem.table, origin_client(3, "e3"), [foreign(0), foreign(1, persistent=True)])
    put_foreign_pages(tmem.table, origin_client(12, "e1"), [foreign(0)])
    assert held_origins(tmem.table) == {2, 3, 12}
    assert foreign_counts(tmem) == (3, 3)

    assert forget_origin(tmem.table, 2, "") == 3
    assert forget_origin(tmem.table, 2, "") == 0
    assert held_origins(tmem.table) == {3, 12}
    assert origins(tmem.table) == [origin_client(3, "e3"), origin_client(12, "e1")]
    assert foreign_counts(tmem) == (2, 1)
    assert get_foreign(tmem.table, origin_client(2, "e2"), [(EPH_UID, OID, 2)]) == [None]
    assert tmem.get("app", local, 1, 0) == bytes(PAGE_SIZE)
    assert (store.stats.eph_zpages, store.stats.pers_zpages) == (2, 2)
