"""The second copies of concurrent puts to one peer go out merged (`ramster.remote.merging`), and
each put is still acknowledged only for the pages the peer took. Over a real `Backend` with fake
peers (tests/support/remote.py)."""

from __future__ import annotations

import asyncio

from ramster.errors import Unavailable
from ramster.remote.handles import OriginTmem
from ramster.remote.layer import RemoteLayer
from ramster.remote.merging import WINDOW
from ramster.tmem import Oid, PoolSpec
from ramster.wire.limits import MAX_BATCH
from tests.support.remote import APP, MIB, TWO, big, loaded, run, settle, start


async def put_object(
    layer: RemoteLayer, tmem: OriginTmem, pool: int, oid: int, count: int
) -> set[tuple[Oid, int]]:
    """Put `count` pages of object `oid` and have the layer copy them; the keys refused."""
    outcomes = tmem.put_many(APP, pool, [(oid, i, big(oid * 1000 + i)) for i in range(count)])
    keys = [((oid, 0, 0), i) for i in range(count)]
    return await layer.replicate(tmem, APP, pool, keys, outcomes)


async def fill_the_window(
    layer: RemoteLayer, tmem: OriginTmem, pool: int
) -> list[asyncio.Task[set[tuple[Oid, int]]]]:
    """`WINDOW` puts of one page each (objects 1..), their copies stored and their answers held
    (the caller cleared the holder's `put_gate`)."""
    puts = [
        asyncio.create_task(put_object(layer, tmem, pool, oid, 1)) for oid in range(1, WINDOW + 1)
    ]
    await settle()
    return puts


FIRST = [[((oid, 0, 0), 0)] for oid in range(1, WINDOW + 1)]
"""The copies `fill_the_window` sends, one message each."""


def test_puts_arriving_while_the_window_is_full_go_out_in_one_message() -> None:
    async def scenario() -> None:
        backend, tmem = loaded(params=TWO)
        layer, peers = await start(backend, {2: 8 * MIB})
        holder = peers.links[2]
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        holder.put_gate.clear()  # copies are stored, their answers held
        first = await fill_the_window(layer, tmem, pool)
        later = [asyncio.create_task(put_object(layer, tmem, pool, oid, 2)) for oid in (7, 8, 9)]
        await settle()
        assert [keys for _, _, keys in peers.calls("put")] == FIRST
        assert not any(task.done() for task in (*first, *later))
        holder.put_gate.set()
        assert await asyncio.gather(*first, *later) == [set()] * (WINDOW + 3)
        assert [keys for _, _, keys in peers.calls("put")] == [
            *FIRST,
            [((oid, 0, 0), i) for oid in (7, 8, 9) for i in range(2)],
        ]
        assert holder.most_puts_out == WINDOW
        assert tmem.counters()["pers_pages_replicated"] == WINDOW + 6
        assert layer.counters["pers_copies_made"] == WINDOW + 6
        # A lone put, the window free again, goes out at once.
        assert await put_object(layer, tmem, pool, 10, 1) == set()
        assert len(peers.calls("put")) == WINDOW + 2

    run(scenario)


def test_a_merged_message_holds_at_most_a_batch_of_pages() -> None:
    async def scenario() -> None:
        backend, tmem = loaded(memory=64 * MIB, params=TWO)
        layer, peers = await start(backend, {2: 64 * MIB})
        holder = peers.links[2]
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        holder.put_gate.clear()
        first = await fill_the_window(layer, tmem, pool)
        half = MAX_BATCH // 2
        later = [asyncio.create_task(put_object(layer, tmem, pool, oid, half)) for oid in (7, 8, 9)]
        await settle()
        holder.put_gate.set()
        assert await asyncio.gather(*first, *later) == [set()] * (WINDOW + 3)
        sizes = [len(keys) for _, _, keys in peers.calls("put")]  # type: ignore[arg-type]
        assert sizes == [1] * WINDOW + [2 * half, half]

    run(scenario)


def test_a_merged_message_that_fails_refuses_the_pages_of_every_put_in_it() -> None:
    async def scenario() -> None:
        backend, tmem = loaded(params=TWO)
        layer, peers = await start(backend, {2: 8 * MIB})
        holder = peers.links[2]
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        holder.put_gate.clear()
        first = await fill_the_window(layer, tmem, pool)
        later = [asyncio.create_task(put_object(layer, tmem, pool, oid, 2)) for oid in (7, 8)]
        await settle()
        holder.put_error = Unavailable("node 2 is unreachable")
        holder.put_gate.set()
        assert await asyncio.gather(*first, *later) == [set()] * WINDOW + [
            {((7, 0, 0), 0), ((7, 0, 0), 1)},
            {((8, 0, 0), 0), ((8, 0, 0), 1)},
        ]
        assert tmem.get_many(APP, pool, [(1, 0), (7, 0), (8, 1)], free=False) == [
            big(1000),
            None,
            None,
        ]
        assert tmem.counters()["pers_puts_unreplicated"] == 4

    run(scenario)


def test_a_put_whose_caller_is_gone_before_its_turn_is_not_sent() -> None:
    async def scenario() -> None:
        backend, tmem = loaded(params=TWO)
        layer, peers = await start(backend, {2: 8 * MIB})
        holder = peers.links[2]
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        holder.put_gate.clear()
        first = await fill_the_window(layer, tmem, pool)
        gone, kept = (asyncio.create_task(put_object(layer, tmem, pool, oid, 1)) for oid in (7, 8))
        await settle()
        gone.cancel()
        holder.put_gate.set()
        assert list(await asyncio.gather(*first, kept)) == [set()] * (WINDOW + 1)
        assert [keys for _, _, keys in peers.calls("put")] == [*FIRST, [((8, 0, 0), 0)]]
        assert gone.cancelled()

    run(scenario)
