"""Remote gets (`ramster.remote.fetch`, docs/design.md §5, §6): one request per page however many
callers wait, one per holder; a holder without its copy loses it, an unreachable holder leaves a
persistent page `Unanswered` (never a miss), and no caller is ever stranded. Over a real
`Backend` with fake peers (tests/support/remote.py); failing over to a page's other copy is in
test_failover.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Sequence

import pytest

from ramster.errors import Unavailable
from ramster.page import pack_page
from ramster.remote.handles import RemoteFlush, RemoteRef, Unanswered
from ramster.remote.peer import FoundPage
from ramster.remote.shipping import remote_refs
from ramster.tmem import Hit, PoolSpec, Stored
from tests.support.remote import (
    APP,
    ME,
    MIB,
    big,
    fetched,
    loaded,
    member,
    put,
    ref_of,
    run,
    ship,
    small,
    start,
    store_of,
)


def test_concurrent_gets_of_one_remote_page_send_one_request() -> None:
    async def scenario() -> None:
        backend, tmem = loaded()
        layer, peers = await start(backend, {2: MIB})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        version = put(tmem, pool, 7, 0, big(1))
        ship(tmem, peers.links[2], True)
        ref = ref_of(tmem, pool, 7, 0)
        peers.links[2].gate.clear()

        getters = [asyncio.create_task(fetched(layer, [ref])) for _ in range(10)]
        await asyncio.sleep(0)  # every getter is waiting now
        peers.links[2].gate.set()
        answers = await asyncio.gather(*getters)

        assert answers == [[pack_page(big(1))]] * 10
        assert peers.log == [(2, "get", [((7, 0, 0), 0)])]
        assert layer.counters["remote_gets_sent"] == 1
        assert tmem.counters()["remote_pers_pages_succ_get"] == 1
        assert tmem.page_version(APP, pool, 7, 0) == version  # a keep-get leaves the handle
        assert remote_refs(tmem.table) == [ref]

    run(scenario)


def test_concurrent_gets_that_free_one_remote_page_share_one_request_and_one_takes_it() -> None:
    async def scenario() -> None:
        backend, tmem = loaded()
        layer, peers = await start(backend, {2: MIB})
        pool = tmem.new_pool(APP, PoolSpec())
        put(tmem, pool, 7, 0, big(1))
        [shipment] = ship(tmem, peers.links[2], False)
        ref = ref_of(tmem, pool, 7, 0)
        peers.links[2].gate.clear()

        getters = [asyncio.create_task(layer.fetch([ref], keep=False)) for _ in range(10)]
        await asyncio.sleep(0)
        peers.links[2].gate.set()
        answers = await asyncio.gather(*getters)

        hit = Hit(pack_page(big(1)), ref.obj_id, 0, shipment.version)
        assert answers == [[hit]] * 10
        assert peers.log == [(2, "get", [((7, 0, 0), 0)])]  # the holder keeps its copy ...
        assert len(peers.links[2].pages) == 1
        # ... until one of the gets sends its answer and takes the page; the others miss.
        assert [tmem.take(answer) for answer in answers] == [[True]] + [[False]] * 9
        counters = tmem.counters()
        assert counters["remote_eph_pages_succ_get"] == 1
        assert counters["remote_pages"] == 0
        assert tmem.page_version(APP, pool, 7, 0) is None
        assert tmem.table.elsewhere.drain() == [RemoteFlush.of(2, shipment)]

    run(scenario)


def test_one_fetch_sends_one_request_per_holder() -> None:
    async def scenario() -> None:
        backend, tmem = loaded()
        layer, peers = await start(backend, {2: MIB, 3: MIB})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        for index in range(3):
            put(tmem, pool, 7, index, big(index))
        ship(tmem, peers.links[2], True, max_pages=1)
        ship(tmem, peers.links[3], True, max_pages=1)
        ship(tmem, peers.links[2], True, max_pages=1)
        refs = [ref_of(tmem, pool, 7, index) for index in range(3)]

        answers = await fetched(layer, refs)

        assert answers == [pack_page(big(index)) for index in range(3)]
        assert sorted(peers.log, key=lambda call: call[0]) == [
            (2, "get", [((7, 0, 0), 0), ((7, 0, 0), 2)]),
            (3, "get", [((7, 0, 0), 1)]),
        ]
        assert layer.counters["remote_gets_sent"] == 2

    run(scenario)


def test_an_unreachable_holder_leaves_a_persistent_page_unanswered_and_in_place() -> None:
    async def scenario() -> None:
        backend, tmem = loaded()
        layer, peers = await start(backend, {2: MIB})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        version = put(tmem, pool, 7, 0, big(1))
        ship(tmem, peers.links[2], True)
        ref = ref_of(tmem, pool, 7, 0)
        peers.links[2].get_error = Unavailable("node 2 is unreachable")

        assert await layer.fetch([ref], keep=False) == [Unanswered((2,))]

        assert tmem.page_version(APP, pool, 7, 0) == version
        assert remote_refs(tmem.table) == [ref]
        counters = tmem.counters()
        assert counters["remote_pers_pages_unsucc_get"] == 0
        assert counters["remote_pers_pages_lost"] == 0
        assert layer.counters["remote_gets_sent"] == 0
        assert layer.fetcher._inflight == {}

        peers.links[2].get_error = None  # it is back: the page is still there
        assert await fetched(layer, [ref]) == [pack_page(big(1))]

        # The holder left the view: with no other copy the handle stays (it may come back) ...
        await layer.set_members({ME: member(ME, 0)})
        assert await fetched(layer, [ref]) == [Unanswered((2,))]
        assert tmem.page_version(APP, pool, 7, 0) == version
        # ... and it is lost (counted, never answered wrong) once the holder is back restarted.
        await layer.set_members(
            {ME: member(ME, 0), 2: dataclasses.replace(member(2, MIB), epoch="e2b")}
        )
        assert tmem.page_version(APP, pool, 7, 0) is None
        assert tmem.counters()["remote_pers_pages_lost"] == 1
        assert await fetched(layer, [ref]) == [None]

    run(scenario)


def test_an_unreachable_holder_makes_an_ephemeral_page_a_miss_for_good() -> None:
    async def scenario() -> None:
        backend, tmem = loaded()
        layer, peers = await start(backend, {2: MIB})
        pool = tmem.new_pool(APP, PoolSpec(shared_uuid=uuid.UUID(int=1)))
        put(tmem, pool, 7, 0, big(1))
        [shipment] = ship(tmem, peers.links[2], False)
        ref = ref_of(tmem, pool, 7, 0)
        peers.links[2].get_error = Unavailable("node 2 is unreachable")

        assert await fetched(layer, [ref]) == [None]

        # Once a get missed, later gets miss until a new put: the record is gone, and the
        # holder is told to drop its copy (it may answer again later).
        peers.links[2].get_error = None
        assert tmem.get_many_packed(APP, pool, [(7, 0)]) == [None]
        assert tmem.counters()["remote_eph_pages_unsucc_get"] == 1
        assert tmem.table.elsewhere.drain() == [RemoteFlush.of(2, shipment)]

    run(scenario)


@pytest.mark.parametrize("room", [True, False], ids=["below-low", "above-low"])
def test_a_keep_get_below_the_low_watermark_brings_a_persistent_page_home(room: bool) -> None:
    async def scenario() -> None:
        backend, tmem = loaded()
        store = store_of(backend)
        layer, peers = await start(backend, {2: MIB})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        version = put(tmem, pool, 7, 0, big(1))
        [shipment] = ship(tmem, peers.links[2], True)
        ref = ref_of(tmem, pool, 7, 0)
        low = store.config.low_watermark * store.config.memory
        filler, index = tmem.new_pool(APP, PoolSpec()), 0
        while not room and store.used_bytes < low:  # ephemeral pages up to the low watermark
            put(tmem, filler, 8, index, small(index))
            index += 1
        assert (store.used_bytes < low) is room

        assert await fetched(layer, [ref], keep=True) == [pack_page(big(1))]

        counters = tmem.counters()
        assert counters["remote_pers_pages_succ_get"] == 1
        assert counters["pers_pages_repatriated"] == int(room)
        [found] = tmem.get_many_packed(APP, pool, [(7, 0)])
        if room:  # home, same version: the next reads are local, the holder's copy goes
            assert found == Hit(pack_page(big(1)), ref.obj_id, 0, version)
            assert tmem.table.elsewhere.drain() == [RemoteFlush.of(2, shipment)]
        else:  # no room: it stays on the peer
            assert found == ref
            assert tmem.table.elsewhere.drain() == []

    run(scenario)


@pytest.mark.parametrize("held", ["missing", "other-version"])
def test_a_holder_without_the_page_loses_a_persistent_page(held: str) -> None:
    async def scenario() -> None:
        backend, tmem = loaded()
        layer, peers = await start(backend, {2: MIB})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        put(tmem, pool, 7, 0, big(1))
        [shipment] = ship(tmem, peers.links[2], True)
        ref = ref_of(tmem, pool, 7, 0)
        key = (shipment.pool_uid, (7, 0, 0), 0)
        if held == "missing":
            del peers.links[2].pages[key]
        else:
            peers.links[2].pages[key] = (shipment.page, shipment.version + 1)

        assert await fetched(layer, [ref]) == [None]

        counters = tmem.counters()
        assert counters["remote_pers_pages_lost"] == 1
        assert counters["remote_pers_pages_unsucc_get"] == 1
        assert counters["remote_pages"] == 0
        assert tmem.page_version(APP, pool, 7, 0) is None

    run(scenario)


def test_a_cancelled_getter_does_not_strand_the_others() -> None:
    async def scenario() -> None:
        backend, tmem = loaded()
        layer, peers = await start(backend, {2: MIB})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        put(tmem, pool, 7, 0, big(1))
        ship(tmem, peers.links[2], True)
        ref = ref_of(tmem, pool, 7, 0)
        peers.links[2].gate.clear()

        first = asyncio.create_task(fetched(layer, [ref]))
        second = asyncio.create_task(fetched(layer, [ref]))
        await asyncio.sleep(0)
        first.cancel()  # its client gave up (deadline, disconnect)
        await asyncio.sleep(0)
        peers.links[2].gate.set()

        assert await asyncio.wait_for(second, 0.2) == [pack_page(big(1))]
        assert await asyncio.wait_for(fetched(layer, [ref]), 0.2) == [pack_page(big(1))]

    run(scenario)


def test_a_get_and_free_racing_a_reship_loses_no_page() -> None:
    async def scenario() -> None:
        backend, tmem = loaded()
        layer, peers = await start(backend, {2: MIB})
        holder = peers.links[2]
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        put(tmem, pool, 7, 0, big(1))
        ship(tmem, holder, True)
        old_ref = ref_of(tmem, pool, 7, 0)
        holder.gate.clear()

        getter = asyncio.create_task(layer.fetch([old_ref], keep=False))
        await asyncio.sleep(0)  # the exclusive get is on the wire
        put(tmem, pool, 7, 0, big(2))  # a new version of the page...
        await holder.flush(tmem.table.elsewhere.drain())
        [newer] = ship(tmem, holder, True)  # ...reaches the same holder before the get does
        holder.gate.set()

        # The holder answers with the newer page, which the handle names now: the get takes
        # it, as it would take a newer local page, and the holder's copy is flushed.
        [hit] = await getter
        assert hit == Hit(pack_page(big(2)), old_ref.obj_id, 0, newer.version)
        assert tmem.take([hit]) == [True]
        assert tmem.page_version(APP, pool, 7, 0) is None
        counters = tmem.counters()
        assert counters["remote_pers_pages_succ_get"] == 1
        assert counters["remote_pers_pages_lost"] == counters["remote_pages"] == 0
        assert tmem.table.elsewhere.drain() == [RemoteFlush.of(2, newer)]

    run(scenario)


def test_a_get_in_flight_across_a_zcache_reload_touches_nothing_of_the_new_backend() -> None:
    async def scenario() -> None:
        backend, tmem = loaded()
        layer, peers = await start(backend, {2: MIB})
        pool = tmem.new_pool(APP, PoolSpec())
        put(tmem, pool, 7, 0, big(1))
        ship(tmem, peers.links[2], False)
        ref = ref_of(tmem, pool, 7, 0)
        peers.links[2].gate.clear()

        getter = asyncio.create_task(layer.fetch([ref], keep=False))
        await asyncio.sleep(0)  # the get is on the wire
        assert backend.set_param("zcache", "off")  # no persistent page: allowed
        assert backend.set_param("zcache", "on")
        fresh = backend.require()
        other = fresh.new_pool("other", PoolSpec(persistent=True))
        # Object 0 of the new backend; versions go on from the old one's.
        assert fresh.put("other", other, 99, 0, big(50)) == Stored(2)
        peers.links[2].gate.set()

        assert await getter == [None]  # the page asked for went with the old backend
        assert fresh.get("other", other, 99, 0, free=False) == big(50)

    run(scenario)


def test_a_malformed_answer_never_strands_the_callers_of_a_page() -> None:
    async def scenario() -> None:
        backend, tmem = loaded()
        layer, peers = await start(backend, {2: MIB})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        put(tmem, pool, 7, 0, big(1))
        ship(tmem, peers.links[2], True)
        ref = ref_of(tmem, pool, 7, 0)

        async def broken(
            refs: Sequence[RemoteRef], timeout: float | None = None
        ) -> list[FoundPage | None]:
            raise ValueError("a reply shorter than the request")

        peers.links[2].get = broken  # type: ignore[method-assign]
        with pytest.raises(ValueError):
            await fetched(layer, [ref])
        assert layer.fetcher._inflight == {}
        del peers.links[2].get  # the class's method again
        assert await asyncio.wait_for(fetched(layer, [ref]), 1.0) == [pack_page(big(1))]

    run(scenario)
