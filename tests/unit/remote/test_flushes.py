"""Sending the queued flushes of remote copies (`ramster.remote.flushes`, docs/design.md §5): they
go out before each shipping batch, and a page put again or reshipped while flushes or its old copy
are on the wire survives them (flushes name versions). Over a real `Backend` with fake peers
(tests/support/remote.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ramster.page import pack_page
from ramster.params import ModuleParams
from ramster.remote.handles import RemoteFlush, Shipment
from ramster.tmem import PoolSpec
from ramster.tmem.pool import OBJECT_BYTES
from ramster.zcache.store import SLOT_BYTES
from tests.support.remote import (
    APP,
    BATCH,
    MIB,
    big,
    cost,
    fetched,
    loaded,
    put,
    ref_of,
    run,
    settle,
    ship,
    small,
    start,
    store_of,
)


def test_queued_flushes_go_out_before_each_shipping_batch() -> None:
    async def scenario() -> None:
        backend, tmem = loaded(memory=MIB)
        store = store_of(backend)
        layer, peers = await start(backend, {2: MIB})
        # A remote page, flushed: its flush is queued before the tick.
        pers = tmem.new_pool(APP, PoolSpec(persistent=True))
        put(tmem, pers, 5, 0, big(1000))
        [old] = ship(tmem, peers.links[2], True)
        assert tmem.flush_page(APP, pers, 5, 0)
        # Full enough for at least two batches of small pages.
        eph = tmem.new_pool(APP, PoolSpec())
        per_page = SLOT_BYTES + cost(small(0))
        pages = (store.config.memory - OBJECT_BYTES) // per_page
        for index in range(pages):
            put(tmem, eph, 7, index, small(index))
        high = store.config.high_watermark * store.config.memory
        assert store.used_bytes - BATCH * cost(small(0)) > high

        first: list[Shipment] = []

        def flush_one_in_flight(shipments: Sequence[Shipment]) -> None:
            if not first:  # a flush lands while the first batch is on the wire
                first.extend(shipments)
                assert tmem.flush_page(APP, eph, 7, shipments[0].index)

        peers.links[2].on_put = flush_one_in_flight
        await layer.tick()

        def batch(n: int) -> tuple[int, str, object]:
            return (2, "put", [((7, 0, 0), i) for i in range(n * BATCH, (n + 1) * BATCH)])

        # Two batches are on the wire at once: the second is taken, and the flushes queued
        # until then sent, before the first is answered. The flush queued while the first was
        # on the wire (after the second was taken) goes out before the third batch.
        assert peers.log == [
            (2, "flush", [RemoteFlush(2, old.pool_uid, (5, 0, 0), 0, old.version)]),
            batch(0),
            batch(1),
            (2, "flush", [RemoteFlush(2, first[0].pool_uid, (7, 0, 0), 0, first[0].version)]),
            batch(2),
            batch(3),
        ]
        assert store.used_bytes <= store.config.low_watermark * store.config.memory
        assert layer.counters["remote_pages_flushed"] == 2
        assert layer.counters["remotify_batches"] == 4
        assert tmem.counters()["eph_pages_remoted"] == 4 * BATCH - 1
        assert (first[0].pool_uid, (7, 0, 0), 0) not in peers.links[2].pages

    run(scenario)


def test_a_page_put_again_while_flushes_are_on_the_wire_survives_its_reshipping() -> None:
    async def scenario() -> None:
        params = ModuleParams(eph_remotify=False, persistent_copies=1)
        backend, tmem = loaded(memory=MIB, params=params)
        store = store_of(backend)
        layer, peers = await start(backend, {2: MIB})
        holder = peers.links[2]
        pers = tmem.new_pool(APP, PoolSpec(persistent=True))
        put(tmem, pers, 5, 0, big(1000))
        put(tmem, pers, 6, 0, big(1001))
        ship(tmem, holder, True)
        assert tmem.flush_page(APP, pers, 6, 0)  # the tick starts by sending this flush
        for index in range(10):
            put(tmem, pers, 7, index, big(index))
        eph = tmem.new_pool(APP, PoolSpec())  # pressure that stays: ephemeral pages stay home
        index = 0
        while store.used_bytes <= store.config.high_watermark * store.config.memory:
            put(tmem, eph, 8, index, big(100 + index))
            index += 1

        def put_again(flushes: Sequence[RemoteFlush]) -> None:
            if holder.on_flush is not None:
                holder.on_flush = None
                put(tmem, pers, 5, 0, big(2000))  # a client puts the remote page again

        holder.on_flush = put_again
        assert await layer.tick() == 11  # the ten pages of object 7, and the new page

        ref = ref_of(tmem, pers, 5, 0)
        assert ref.node == 2
        assert await fetched(layer, [ref]) == [pack_page(big(2000))]
        assert tmem.counters()["remote_pers_pages_lost"] == 0

    run(scenario)


def test_a_reshipped_page_survives_the_late_orphan_flush_of_its_old_copy() -> None:
    """With batches pipelined, the answer to the batch that carried a page's old copy can come
    back after the new copy reached the same holder in a later batch: the orphan flush of the
    old copy is queued only then, and reaches the holder after the new copy. It names the old
    version, so the holder keeps the new one."""

    async def scenario() -> None:
        params = ModuleParams(eph_remotify=False, persistent_copies=1)
        backend, tmem = loaded(memory=MIB, params=params)
        store = store_of(backend)
        layer, peers = await start(backend, {2: MIB})
        holder = peers.links[2]
        pers = tmem.new_pool(APP, PoolSpec(persistent=True))
        old = put(tmem, pers, 5, 0, small(1000))  # the oldest page: the first of the first batch
        for index in range(BATCH):  # the rest of the first batch, and a second batch of one
            put(tmem, pers, 7, index, small(index))
        eph = tmem.new_pool(APP, PoolSpec())  # pressure that stays: ephemeral pages stay home
        index = 0
        while store.used_bytes <= store.config.high_watermark * store.config.memory:
            put(tmem, eph, 8, index, small(100 + index))
            index += 1
        new: list[int] = []

        def put_again(shipments: Sequence[Shipment]) -> None:
            if not new:  # a client puts the page again while its old copy is on the wire
                new.append(put(tmem, pers, 5, 0, small(2000)))

        holder.on_put = put_again
        slow = asyncio.Event()
        holder.put_gates.append(slow)  # the answer to the first batch is slow

        ticking = asyncio.create_task(layer.tick())
        await settle()

        # The second batch was answered, so a third went out: the new page, to the same holder,
        # which now holds the new copy. The first batch is still unanswered.
        assert peers.log == [
            (2, "put", [((5, 0, 0), 0)] + [((7, 0, 0), i) for i in range(BATCH - 1)]),
            (2, "put", [((7, 0, 0), BATCH - 1)]),
            (2, "put", [((5, 0, 0), 0)]),
        ]
        uid = ref_of(tmem, pers, 7, BATCH - 1).pool_uid
        assert new[0] > old
        assert holder.pages[uid, (5, 0, 0), 0] == (pack_page(small(2000)), new[0])
        assert not ticking.done()
        assert tmem.table.elsewhere.flushes == []
        slow.set()
        assert await ticking == BATCH + 1  # the old copy is an orphan, not a remote page

        # Its flush is queued now, after the new copy arrived, and goes out with the next tick.
        assert tmem.table.elsewhere.flushes == [RemoteFlush(2, uid, (5, 0, 0), 0, old)]
        assert await layer.tick() == 0
        assert peers.log[3:] == [(2, "flush", [RemoteFlush(2, uid, (5, 0, 0), 0, old)])]

        assert holder.pages[uid, (5, 0, 0), 0] == (pack_page(small(2000)), new[0])
        ref = ref_of(tmem, pers, 5, 0)
        assert (ref.node, ref.version) == (2, new[0])
        assert await fetched(layer, [ref]) == [pack_page(small(2000))]
        counters = tmem.counters()
        assert counters["remote_pers_pages_lost"] == 0
        assert counters["remote_pers_pages_succ_get"] == 1
        assert counters["remote_pages"] == BATCH + 1

    run(scenario)
