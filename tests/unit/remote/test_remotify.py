"""Shipping rounds under pressure (`ramster.remote.remotify`, docs/design.md §4, §5): from above the
high watermark to below the low one, in batches of `batch_pages`, at most `in_flight` on the wire,
never to the peer holding a page's other copy. Over a real `Backend` with fake peers
(tests/support/remote.py); the pure decisions are in test_policy.py and the core it calls
in tests/unit/remote/test_shipping.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Sequence

import pytest

from ramster.errors import Unavailable
from ramster.page import compress_page
from ramster.remote.handles import Shipment
from ramster.remote.shipping import remote_refs
from ramster.tmem import PoolSpec
from ramster.zcache.store import PAGE_BYTES, SLOT_BYTES
from tests.support.remote import (
    APP,
    BATCH,
    CONFIG,
    MIB,
    TWO,
    big,
    cost,
    fill_above_high,
    fill_to_the_brim,
    loaded,
    put,
    run,
    settle,
    shipped_cost,
    small,
    start,
    store_of,
)


def test_the_pages_cost_what_the_batch_counts_assume() -> None:
    assert {cost(big(seed)) for seed in range(1000)} == {2080 + PAGE_BYTES}
    assert {cost(small(seed)) for seed in range(1000)} == {1072 + PAGE_BYTES}
    assert BATCH * len(compress_page(big(0))[0]) < CONFIG.batch_bytes


def test_tick_below_the_high_watermark_ships_nothing() -> None:
    async def scenario() -> None:
        backend, tmem = loaded(memory=MIB)
        layer, peers = await start(backend, {2: MIB})
        pool = tmem.new_pool(APP, PoolSpec())
        for index in range(100):
            put(tmem, pool, 7, index, big(index))
        assert await layer.tick() == 0
        assert peers.log == []

    run(scenario)


def test_tick_ships_from_above_the_high_watermark_to_below_the_low_one_and_stops() -> None:
    async def scenario() -> None:
        backend, tmem = loaded(memory=MIB)
        store = store_of(backend)
        layer, peers = await start(backend, {2: MIB})
        _, pages = fill_above_high(tmem, store, big)
        before = store.used_bytes
        # One batch is more than the gap between the watermarks here.
        low = store.config.low_watermark * store.config.memory
        assert before - BATCH * shipped_cost(big(0)) <= low

        assert await layer.tick() == BATCH

        assert peers.log == [(2, "put", [((7, 0, 0), i) for i in range(BATCH)])]
        assert store.used_bytes == before - BATCH * shipped_cost(big(0))
        assert tmem.counters()["eph_pages_remoted"] == BATCH
        assert store.stats.eph_zpages == pages - BATCH
        assert layer.counters["remotify_batches"] == 1
        assert await layer.tick() == 0  # below the watermarks now: nothing more
        assert len(peers.log) == 1

    run(scenario)


def test_remotify_is_active_while_a_round_ships_or_a_flush_waits() -> None:
    async def scenario() -> None:
        backend, tmem = loaded(memory=MIB)
        store = store_of(backend)
        layer, peers = await start(backend, {2: MIB})
        pool, _ = fill_above_high(tmem, store, big)
        assert layer.all_counters()["remotify_active"] == 0
        peers.links[2].put_gate.clear()  # the batch is stored, its answer held
        round_ = asyncio.create_task(layer.tick())
        await settle()
        assert layer.all_counters()["remotify_active"] == 1
        peers.links[2].put_gate.set()
        assert await round_ == BATCH
        assert layer.all_counters()["remotify_active"] == 0
        assert tmem.flush_page(APP, pool, 7, 0)  # a shipped page: its copy's flush is queued
        assert layer.all_counters()["remotify_active"] == 1
        assert await layer.tick() == 0  # sends it
        assert layer.all_counters()["remotify_active"] == 0

    run(scenario)


def test_tick_keeps_shipping_down_to_the_low_watermark() -> None:
    async def scenario() -> None:
        backend, tmem = loaded(memory=MIB)
        store = store_of(backend)
        layer, peers = await start(backend, {2: MIB})
        fill_above_high(tmem, store, small)
        config = store.config
        batch_bytes = BATCH * shipped_cost(small(0))
        batches = math.ceil((store.used_bytes - config.low_watermark * config.memory) / batch_bytes)
        assert batches == 2  # one batch is less than the gap between the watermarks

        assert await layer.tick() == batches * BATCH

        assert len(peers.calls("put")) == batches
        assert store.used_bytes <= config.low_watermark * config.memory
        assert store.used_bytes + batch_bytes > config.low_watermark * config.memory

    run(scenario)


@pytest.mark.parametrize(
    ("in_flight", "rounds"),
    [
        (1, [(1, 1), (2, 1), (3, 1), (4, 1), (4, 0)]),
        (2, [(2, 2), (4, 2), (4, 0)]),
    ],
)
def test_tick_keeps_at_most_in_flight_batches_on_the_wire(
    in_flight: int, rounds: list[tuple[int, int]]
) -> None:
    """`rounds`: (puts sent, puts not answered) each time the link is stuck, before the puts
    waiting then are answered."""

    async def scenario() -> None:
        backend, tmem = loaded(memory=MIB)
        store = store_of(backend)
        layer, peers = await start(
            backend, {2: MIB}, dataclasses.replace(CONFIG, in_flight=in_flight)
        )
        holder = peers.links[2]
        fill_to_the_brim(tmem, store)
        before = store.used_bytes
        low = store.config.low_watermark * store.config.memory
        per_batch = BATCH * shipped_cost(small(0))
        # Four batches take the store below the low watermark; three would not.
        assert before - 4 * per_batch <= low < before - 3 * per_batch
        holder.put_gate.clear()  # a slow link: every answer waits for the gate

        ticking = asyncio.create_task(layer.tick())
        await settle()
        assert not ticking.done()
        assert len(peers.calls("put")) == holder.puts_out == in_flight
        # The pressure would take another batch: only the limit holds it back.
        on_wire = sum(len(page.payload) for page, _ in holder.pages.values())
        assert store.used_bytes - on_wire > low
        seen = [(len(peers.calls("put")), holder.puts_out)]
        while not ticking.done():
            holder.put_gate.set()  # answers the puts waiting now...
            holder.put_gate.clear()  # ...and not the ones sent after
            await settle()
            seen.append((len(peers.calls("put")), holder.puts_out))

        assert seen == rounds
        assert await ticking == 4 * BATCH
        assert holder.most_puts_out == in_flight
        assert peers.log == [
            (2, "put", [((7, 0, 0), i) for i in range(n * BATCH, (n + 1) * BATCH)])
            for n in range(4)
        ]
        assert store.used_bytes == before - 4 * per_batch
        assert layer.counters["remotify_batches"] == 4

    run(scenario)


def test_shipping_sends_no_page_to_the_peer_with_its_other_copy() -> None:
    async def scenario() -> None:
        backend, tmem = loaded(params=TWO)
        store = store_of(backend)
        # The copies (3.5 MB, in calls of 64 pages) leave 3 more room than 2 all along.
        layer, peers = await start(backend, {2: 8 * MIB, 3: 16 * MIB})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        per_page = SLOT_BYTES + cost(big(0))
        count = int(store.config.high_watermark * store.config.memory // per_page) + 1
        outcomes = tmem.put_many(APP, pool, [(1, i, big(i)) for i in range(count)])
        keys = [((1, 0, 0), i) for i in range(count)]
        shipments = layer.copies_of_puts(tmem, APP, pool, keys, outcomes)
        assert await layer.copy(tmem, shipments, take_back=True) == set()
        assert await layer.tick() > 0
        assert peers.links[3].pages.keys() == {(1, (1, 0, 0), i) for i in range(count)}
        assert all(r.node == 2 and r.replica == 3 for r in remote_refs(tmem.table))

    run(scenario)


def test_shipping_sends_pages_to_the_next_best_peer_when_the_best_holds_their_copies() -> None:
    async def scenario() -> None:
        backend, tmem = loaded(params=TWO)
        store = store_of(backend)
        free = {2: 10 * MIB, 3: 40 * MIB, 4: 20 * MIB, 5: 30 * MIB}
        layer, peers = await start(backend, free)
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        per_page = SLOT_BYTES + cost(big(0))
        count = int(store.config.high_watermark * store.config.memory // per_page) + 1
        outcomes = tmem.put_many(APP, pool, [(1, i, big(i)) for i in range(count)])
        keys = [((1, 0, 0), i) for i in range(count)]
        shipments = layer.copies_of_puts(tmem, APP, pool, keys, outcomes)
        assert await layer.copy(tmem, shipments, take_back=True) == set()
        assert len(peers.links[3].pages) == count  # the copies: on the peer with most room
        assert await layer.tick() > 0
        assert {r.node for r in remote_refs(tmem.table)} == {5}  # the next by free bytes
        assert peers.links[2].pages == peers.links[4].pages == {}

    run(scenario)


def test_tick_counts_the_batches_still_in_flight_when_no_target_is_left() -> None:
    async def scenario() -> None:
        backend, tmem = loaded(memory=MIB)
        layer, peers = await start(backend, {2: MIB}, dataclasses.replace(CONFIG, in_flight=2))
        holder = peers.links[2]
        fill_to_the_brim(tmem, store_of(backend))
        holder.put_error = Unavailable("node 2 is unreachable")
        calls: list[int] = []

        def second_put_succeeds(shipments: Sequence[Shipment]) -> None:
            calls.append(len(shipments))
            if len(calls) == 2:
                holder.put_error = None

        holder.on_put = second_put_succeeds
        holder.put_gate.clear()  # the second batch is answered late

        ticking = asyncio.create_task(layer.tick())
        await settle()  # the first batch failed: node 2 is skipped, no target is left
        holder.put_gate.set()
        shipped = await ticking

        assert tmem.counters()["eph_pages_remoted"] == BATCH  # the second batch was shipped
        assert shipped == BATCH  # fails: tick returns 0

    run(scenario)
