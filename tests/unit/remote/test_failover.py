"""Remote gets of pages with two copies (`ramster.remote.fetch`, docs/design.md §6): a get fails
over to the replica, a copy a holder answered without is written off (the other is the only one
now), and a page neither holder answered for is `Unanswered`, never lost. Over a real `Backend` with
fake peers (tests/support/remote.py).
"""

from __future__ import annotations

from ramster.errors import Unavailable
from ramster.page import pack_page
from ramster.remote.handles import RemoteFlush, Unanswered
from ramster.tmem import PoolSpec
from tests.support.remote import (
    APP,
    MIB,
    TWO,
    big,
    fetched,
    loaded,
    put_copied,
    ref_of,
    run,
    ship,
    start,
)


def test_a_get_fails_over_to_the_replica_and_a_primary_without_its_copy_is_replaced() -> None:
    async def scenario() -> None:
        backend, tmem = loaded(params=TWO)
        layer, peers = await start(backend, {2: MIB, 3: 2 * MIB})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        assert await put_copied(layer, tmem, pool, 2) == set()  # copies on 3
        ship(tmem, peers.links[2], True)  # the pages themselves on 2
        first, second = ref_of(tmem, pool, 1, 0), ref_of(tmem, pool, 1, 1)
        assert (first.node, first.replica) == (2, 3)

        peers.links[2].get_error = Unavailable("node 2 is unreachable")
        assert await fetched(layer, [first]) == [pack_page(big(0))]
        assert layer.counters["remote_gets_failed_over"] == 1
        assert ref_of(tmem, pool, 1, 0) == first  # unreachable is not gone: nothing moves

        peers.links[2].get_error = None
        del peers.links[2].pages[second.pool_uid, second.oid, second.index]
        assert await fetched(layer, [second]) == [pack_page(big(1))]
        moved = ref_of(tmem, pool, 1, 1)
        assert (moved.node, moved.replica) == (3, None)  # 3's copy is the only one now
        assert tmem.counters()["remote_pers_pages_lost"] == 0

    run(scenario)


def test_a_primary_without_its_copy_and_an_unreachable_replica_is_unanswered_not_lost() -> None:
    async def scenario() -> None:
        backend, tmem = loaded(params=TWO)
        layer, peers = await start(backend, {2: MIB, 3: 2 * MIB})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        assert await put_copied(layer, tmem, pool, 1) == set()  # the copy on 3
        ship(tmem, peers.links[2], True)  # the page on 2
        ref = ref_of(tmem, pool, 1, 0)
        peers.links[2].pages.clear()  # node 2 answers without it (restarted, say)
        peers.links[3].get_error = Unavailable("node 3 is slow")

        assert await fetched(layer, [ref]) == [Unanswered((3,))]
        moved = ref_of(tmem, pool, 1, 0)  # the page is kept, read from 3 from now on
        assert (moved.node, moved.replica) == (3, None)
        assert tmem.counters()["remote_pers_pages_lost"] == 0
        peers.links[3].get_error = None
        assert await fetched(layer, [moved]) == [pack_page(big(0))]

    run(scenario)


def test_an_unreachable_primary_and_a_replica_without_its_copy_is_unanswered() -> None:
    async def scenario() -> None:
        backend, tmem = loaded(params=TWO)
        layer, peers = await start(backend, {2: MIB, 3: 2 * MIB})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        assert await put_copied(layer, tmem, pool, 1) == set()  # the copy on 3
        ship(tmem, peers.links[2], True)  # the page on 2
        ref = ref_of(tmem, pool, 1, 0)
        peers.links[2].get_error = Unavailable("node 2 is slow")
        peers.links[3].pages.clear()  # node 3 answers without its copy

        assert await fetched(layer, [ref]) == [Unanswered((2,))]
        kept = ref_of(tmem, pool, 1, 0)  # the page stays on 2, its only copy now
        assert (kept.node, kept.replica) == (2, None)
        assert tmem.table.elsewhere.drain() == [RemoteFlush.of(3, ref)]
        peers.links[2].get_error = None
        assert await fetched(layer, [kept]) == [pack_page(big(0))]

    run(scenario)
