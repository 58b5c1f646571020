"""Copies of persistent pages on two nodes, in the pure core (`ramster.remote.copies`;
docs/design.md §6).

A "peer" is a node number; what a peer holds is simulated by the holder-side core
(`ramster.holder.foreign`) on a second `Tmem` where a test needs it. Races are forced by calling the
core in the order the network would interleave it (copy taken, then a put or flush, then the copy
recorded). Taking the copies back after a restart is in tests/unit/remote/test_restore.py; the async
layer that drives this is in tests/unit/remote/.
"""

from __future__ import annotations

import contextlib
import uuid

from hypothesis import given
from hypothesis import strategies as st

from ramster.errors import FailedPrecondition
from ramster.page import pack_page
from ramster.remote.copies import (
    HERE,
    PageCopies,
    ShortfallScan,
    copies_of_puts,
    lost_copy,
    read_here,
    settle,
    short_of_copies,
    unput,
)
from ramster.remote.departures import write_off
from ramster.remote.handles import RemoteFlush
from ramster.remote.shipping import (
    complete_shipments,
    localify,
    remote_refs,
    take_shipments,
)
from ramster.tmem import Hit, PoolSpec
from tests.support.copies import (
    ALL,
    APP,
    NOBODY,
    PAGE_SIZE,
    PERSISTENT,
    B,
    C,
    D,
    copied,
    host,
    page,
    shortfall,
    stored,
    where,
)


def test_a_put_yields_one_copy_per_stored_page_and_settling_records_the_replica() -> None:
    tmem = host()
    pool = tmem.new_pool(APP, PERSISTENT)
    outcomes = stored(tmem, pool, [(1, 0), (1, 1)])
    shipments = copies_of_puts(tmem.table, APP, pool, [((1, 0, 0), 0), ((1, 0, 0), 1)], outcomes)
    assert [(s.oid, s.index, s.version, s.page) for s in shipments] == [
        ((1, 0, 0), 0, 1, pack_page(page(100))),
        ((1, 0, 0), 1, 2, pack_page(page(101))),
    ]
    assert settle(tmem.table, shipments[0], B, NOBODY)
    assert where(tmem) == {(1, 0): (HERE, B), (1, 1): (HERE, None)}
    assert shortfall(tmem, 2, NOBODY) == [
        PageCopies(1, (1, 0, 0), 1, 2, shipments[1].obj_id, PAGE_SIZE, None, None)
    ]
    assert tmem.counters()["pers_pages_replicated"] == 1


def test_a_page_put_again_while_its_copy_travels_keeps_the_new_page_and_flushes_the_copy() -> None:
    tmem = host()
    pool = tmem.new_pool(APP, PERSISTENT)
    outcomes = stored(tmem, pool, [(1, 0)])
    [shipment] = copies_of_puts(tmem.table, APP, pool, [((1, 0, 0), 0)], outcomes)
    tmem.put(APP, pool, 1, 0, page(7))  # version 2 while version 1's copy is on the wire

    assert not settle(tmem.table, shipment, B, NOBODY)
    assert tmem.table.elsewhere.drain() == [RemoteFlush(B, 1, (1, 0, 0), 0, 1)]
    assert not unput(tmem.table, shipment)  # the newer page stays
    assert tmem.get(APP, pool, 1, 0, free=False) == page(7)


def test_a_put_no_peer_copied_is_taken_back_and_counted() -> None:
    tmem = host()
    pool = tmem.new_pool(APP, PERSISTENT)
    outcomes = stored(tmem, pool, [(1, 0)])
    [shipment] = copies_of_puts(tmem.table, APP, pool, [((1, 0, 0), 0)], outcomes)
    assert unput(tmem.table, shipment)
    assert tmem.get(APP, pool, 1, 0, free=False) is None
    assert tmem.counters()["pers_puts_unreplicated"] == 1
    assert tmem.table.elsewhere.drain() == []


def test_flushing_a_page_flushes_its_replica_and_destroying_the_pool_its_holders() -> None:
    tmem = host()
    pool = tmem.new_pool(APP, PERSISTENT)
    copied(tmem, pool, [(1, 0), (1, 1), (2, 0)], B)
    assert tmem.flush_page(APP, pool, 1, 0)
    assert tmem.table.elsewhere.drain() == [RemoteFlush(B, 1, (1, 0, 0), 0, 1)]
    assert tmem.flush_object(APP, pool, 1)
    assert tmem.table.elsewhere.drain() == [RemoteFlush(B, 1, (1, 0, 0), None, 2)]
    assert tmem.destroy_pool(APP, pool) == 1
    assert tmem.table.elsewhere.drain() == [RemoteFlush(B, 1)]
    assert tmem.counters()["pers_pages_replicated"] == 0


def test_remotify_keeps_the_replica_and_a_get_and_free_flushes_the_other_copy() -> None:
    tmem = host()
    pool = tmem.new_pool(APP, PERSISTENT)
    copied(tmem, pool, [(1, 0)], B)
    [shipment] = take_shipments(tmem.table, True, 10, ALL)
    assert shipment.replica == B  # the layer ships it anywhere but B
    assert complete_shipments(tmem.table, C, [shipment], [True]) == 1
    assert where(tmem) == {(1, 0): (C, B)}
    [ref] = remote_refs(tmem.table)
    assert (ref.node, ref.replica) == (C, B)

    # C answers (keeping its copy) and the get takes the page: both copies are flushed.
    hit = localify(tmem.table, ref, (pack_page(page(100)), 1))
    assert hit == Hit(pack_page(page(100)), ref.obj_id, 0, 1)
    assert tmem.take([hit]) == [True]
    assert tmem.table.elsewhere.drain() == [
        RemoteFlush(B, 1, (1, 0, 0), 0, 1),
        RemoteFlush(C, 1, (1, 0, 0), 0, 1),
    ]


def test_a_read_failed_over_to_the_replica_flushes_both_copies_when_taken() -> None:
    tmem = host()
    pool = tmem.new_pool(APP, PERSISTENT)
    copied(tmem, pool, [(1, 0)], B)
    complete_shipments(tmem.table, C, take_shipments(tmem.table, True, 10, ALL), [True])
    [ref] = remote_refs(tmem.table)
    hit = localify(tmem.table, ref, (pack_page(page(100)), 1))  # B's answer, the replica
    assert isinstance(hit, Hit) and hit.page == pack_page(page(100))
    assert tmem.take([hit]) == [True]
    assert tmem.table.elsewhere.drain() == [
        RemoteFlush(B, 1, (1, 0, 0), 0, 1),
        RemoteFlush(C, 1, (1, 0, 0), 0, 1),
    ]


def test_a_primary_that_lost_its_copy_leaves_the_replica_as_the_only_one() -> None:
    tmem = host()
    pool = tmem.new_pool(APP, PERSISTENT)
    copied(tmem, pool, [(1, 0)], B)
    complete_shipments(tmem.table, C, take_shipments(tmem.table, True, 10, ALL), [True])
    [ref] = remote_refs(tmem.table)
    assert lost_copy(tmem.table, ref, C)
    assert where(tmem) == {(1, 0): (B, None)}
    assert not lost_copy(tmem.table, ref, C)  # nothing left to promote


def test_settle_moves_copies_off_draining_nodes_and_keeps_two() -> None:
    tmem = host()
    pool = tmem.new_pool(APP, PERSISTENT)
    copied(tmem, pool, [(1, 0)], B)
    complete_shipments(tmem.table, C, take_shipments(tmem.table, True, 10, ALL), [True])
    draining = frozenset({C})
    [item] = shortfall(tmem, 2, draining)  # two copies, one of them on a draining node
    assert (item.primary, item.replica) == (C, B)

    assert settle(tmem.table, item, D, draining)
    assert where(tmem) == {(1, 0): (B, D)}
    assert tmem.table.elsewhere.drain() == [RemoteFlush(C, 1, (1, 0, 0), 0, 1)]
    assert shortfall(tmem, 2, draining) == []


def test_a_page_with_no_peer_to_copy_to_comes_home_beside_its_remote_copy() -> None:
    tmem = host()
    pool = tmem.new_pool(APP, PERSISTENT)
    stored(tmem, pool, [(1, 0)])
    complete_shipments(tmem.table, C, take_shipments(tmem.table, True, 10, ALL), [True])
    [item] = shortfall(tmem, 2, NOBODY)
    assert read_here(tmem.table, item) is None  # it is on C

    assert settle(tmem.table, item, None, NOBODY, home=pack_page(page(100)))
    assert where(tmem) == {(1, 0): (HERE, C)}
    assert tmem.get(APP, pool, 1, 0, free=False) == page(100)


# -- the repair scan and the count of pages at risk -------------------------------------------


def keys_of(short: list[PageCopies]) -> list[tuple[int, int]]:
    return [(c.oid[0], c.index) for c in short]


def test_a_scan_step_visits_at_most_its_limit_and_the_pass_finds_every_short_page() -> None:
    tmem = host()
    pool = tmem.new_pool(APP, PERSISTENT)
    stored(tmem, pool, [(1, i) for i in range(5)] + [(2, 0), (2, 1)])
    ephemeral = tmem.new_pool(APP, PoolSpec())
    stored(tmem, ephemeral, [(3, 0)])
    scan = ShortfallScan(tmem.table)
    steps = []
    while not scan.done:  # every page has one copy: a step returns each page it visits
        steps.append(keys_of(scan.step(2, NOBODY, limit=3)))
    assert steps == [[(1, 0), (1, 1), (1, 2)], [(1, 3), (1, 4), (2, 0)], [(2, 1)]]

    copied(tmem, pool, [(1, 1), (1, 3), (2, 0)], B)  # put again, each with its second copy
    scan = ShortfallScan(tmem.table)
    steps = []
    while not scan.done:
        steps.append(keys_of(scan.step(2, NOBODY, limit=3)))
    assert steps == [[(1, 0), (1, 2)], [(1, 4)], [(2, 1)]]


def test_a_scan_resumes_after_the_last_page_it_visited_whatever_changed_meanwhile() -> None:
    tmem = host()
    pool = tmem.new_pool(APP, PERSISTENT)
    stored(tmem, pool, [(1, i) for i in range(6)] + [(2, 0), (3, 0)])
    scan = ShortfallScan(tmem.table)
    assert keys_of(scan.step(2, NOBODY, limit=2)) == [(1, 0), (1, 1)]

    tmem.flush_page(APP, pool, 1, 2)  # not visited yet: never found
    stored(tmem, pool, [(1, 0), (1, 9)])  # (1, 0) again: visited; (1, 9): a page still ahead
    assert tmem.flush_object(APP, pool, 2)  # an object ahead is gone: skipped
    stored(tmem, pool, [(4, 0)])  # an object made after the pass began: the next pass's
    [third] = scan.step(2, NOBODY, limit=1)
    assert (keys_of([third]), third.version) == ([(1, 3)], 4)
    assert keys_of(scan.step(2, NOBODY, limit=ALL)) == [(1, 4), (1, 5), (1, 9), (3, 0)]
    assert scan.done
    assert scan.step(2, NOBODY, limit=ALL) == []


OPERATIONS = ("put", "copied", "flush", "flush_object", "ship", "lost", "write_off", "free")


@given(st.lists(st.tuples(st.sampled_from(OPERATIONS), st.integers(0, 11)), max_size=40))
def test_the_pages_short_of_copies_are_counted_exactly_without_a_scan(
    operations: list[tuple[str, int]],
) -> None:
    tmem = host()
    shared = PoolSpec(persistent=True, shared_uuid=uuid.UUID(int=3))
    pools = [tmem.new_pool(APP, PERSISTENT), tmem.new_pool(APP, shared)]
    assert tmem.new_pool("other", shared) == 0  # the same pool, under two clients
    ephemeral = tmem.new_pool(APP, PoolSpec())
    for operation, n in operations:
        pool, key = pools[n % 2], (1 + n // 6, n % 3)
        if operation == "put":
            stored(tmem, pool, [key])
            stored(tmem, ephemeral, [key])
        elif operation == "copied":
            copied(tmem, pool, [key], (B, C)[n % 2])
        elif operation == "flush":
            tmem.flush_page(APP, pool, *key)
        elif operation == "flush_object":
            tmem.flush_object(APP, pool, key[0])
        elif operation == "ship":
            shipments = take_shipments(tmem.table, True, 1 + n % 3, ALL)
            complete_shipments(tmem.table, D, shipments, [True] * len(shipments))
        elif operation == "lost":
            for ref in remote_refs(tmem.table, persistent=True)[:1]:
                lost_copy(tmem.table, ref, ref.node)
        elif operation == "write_off":
            write_off(tmem.table, (B, C, D)[n % 3], restarted=n % 2 == 0)
        else:
            with contextlib.suppress(FailedPrecondition):  # a page on a peer: read elsewhere
                tmem.get(APP, pool, *key, free=True)
        assert short_of_copies(tmem.table, 2) == len(shortfall(tmem, 2, NOBODY))
        assert short_of_copies(tmem.table, 1) == 0


def test_a_shipment_onto_the_peer_now_holding_the_replica_is_not_swapped() -> None:
    tmem = host()
    pool = tmem.new_pool(APP, PERSISTENT)
    copied(tmem, pool, [(1, 0)], B)
    [shipment] = take_shipments(tmem.table, True, 10, ALL)  # on its way to C
    draining = frozenset({B})
    [item] = shortfall(tmem, 2, draining)
    assert settle(tmem.table, item, C, draining)  # repair made C the replica meanwhile
    assert complete_shipments(tmem.table, C, [shipment], [True]) == 0
    assert where(tmem) == {(1, 0): (HERE, C)}  # still here, and on C: two nodes


def test_draining_copies_stay_until_two_others_hold_the_page() -> None:
    tmem = host()
    pool = tmem.new_pool(APP, PERSISTENT)
    stored(tmem, pool, [(1, 0)])
    complete_shipments(tmem.table, B, take_shipments(tmem.table, True, 10, ALL), [True])
    [item] = shortfall(tmem, 2, frozenset({B}))
    assert settle(tmem.table, item, C, frozenset({B}))
    assert where(tmem) == {(1, 0): (C, B)}  # B drains, but it is one of only two copies
    assert tmem.table.elsewhere.drain() == []


def test_a_lost_copy_reported_by_a_former_holder_changes_nothing() -> None:
    tmem = host()
    pool = tmem.new_pool(APP, PERSISTENT)
    copied(tmem, pool, [(1, 0)], B)
    complete_shipments(tmem.table, C, take_shipments(tmem.table, True, 10, ALL), [True])
    [ref] = remote_refs(tmem.table)  # a get's ref: the page on C, its copy on B
    [item] = shortfall(tmem, 2, frozenset({C}))
    assert settle(tmem.table, item, D, frozenset({C}))  # repair: now on B and D, C's copy flushed
    tmem.table.elsewhere.drain()
    assert not lost_copy(tmem.table, ref, C)
    assert where(tmem) == {(1, 0): (B, D)}
    assert tmem.table.elsewhere.drain() == []
