"""What a peer leaving does to this node's pages kept on it: `write_off` (docs/design.md §6).

The counting of pages short of copies across write-offs is in test_copies.py (its model test).
"""

from __future__ import annotations

from ramster.remote.copies import HERE
from ramster.remote.departures import write_off
from ramster.remote.handles import RemoteFlush
from ramster.remote.shipping import complete_shipments, take_shipments
from tests.support.copies import (
    ALL,
    APP,
    NOBODY,
    PERSISTENT,
    B,
    C,
    copied,
    host,
    shortfall,
    stored,
    where,
)


def test_a_node_that_left_is_written_off_its_replicas_promoted_and_orphans_listed() -> None:
    tmem = host()
    pool = tmem.new_pool(APP, PERSISTENT)
    copied(tmem, pool, [(1, 0), (1, 1), (1, 2)], B)
    shipments = take_shipments(tmem.table, True, 2, ALL)  # (1, 0) and (1, 1) go to C
    complete_shipments(tmem.table, C, shipments, [True, True])
    tmem.flush_page(APP, pool, 1, 1)  # a flush for C and B waits in the queue
    assert where(tmem) == {(1, 0): (C, B), (1, 2): (HERE, B)}

    off, orphans = write_off(tmem.table, C, restarted=False)
    assert (off.promoted, off.lost, off.replicas) == (1, 0, 0)
    assert where(tmem) == {(1, 0): (B, None), (1, 2): (HERE, B)}
    assert orphans == [
        RemoteFlush(C, 1, (1, 0, 0), 0, 1),  # its copy of (1, 0), now read from B
        RemoteFlush(C, 1, (1, 0, 0), 1, 2),  # the flush that was queued for it
    ]
    assert tmem.table.elsewhere.drain() == [RemoteFlush(B, 1, (1, 0, 0), 1, 2)]
    assert [c.index for c in shortfall(tmem, 2, NOBODY)] == [0]  # read from B alone now


def test_a_single_copy_on_a_node_that_left_stays_until_it_comes_back_restarted() -> None:
    tmem = host()
    pool = tmem.new_pool(APP, PERSISTENT)
    stored(tmem, pool, [(1, 0)])
    complete_shipments(tmem.table, C, take_shipments(tmem.table, True, 10, ALL), [True])
    off, orphans = write_off(tmem.table, C, restarted=False)
    assert (off.lost, orphans) == (0, [])
    assert where(tmem) == {(1, 0): (C, None)}

    off, orphans = write_off(tmem.table, C, restarted=True)
    assert (off.lost, orphans) == (1, [])
    assert tmem.page_version(APP, pool, 1, 0) is None
    assert tmem.counters()["remote_pers_pages_lost"] == 1
