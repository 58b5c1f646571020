"""Second copies (`ramster.remote.replication`, docs/design.md §6): a persistent put is copied to
the peer with most room (the next if it refuses) or refused, a lone node counts its pages at risk,
and repair rebuilds the copies of a node that left. Over a real `Backend` with fake peers
(tests/support/remote.py); the repair loop's pace is in test_repair.py, the pure rules in
tests/unit/remote/test_copies.py.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from ramster.errors import Unavailable
from ramster.remote.policy import RemotifyConfig
from ramster.remote.shipping import complete_shipments, remote_refs, take_shipments
from ramster.tmem import PoolSpec
from tests.support.remote import (
    ALL,
    APP,
    CONFIG,
    ME,
    MIB,
    TWO,
    big,
    loaded,
    member,
    put_copied,
    run,
    settle,
    start,
)


def test_a_put_is_copied_to_the_peer_with_most_room_and_to_the_next_if_it_refuses() -> None:
    async def scenario() -> None:
        backend, tmem = loaded(params=TWO)
        layer, peers = await start(backend, {2: MIB, 3: 2 * MIB})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        peers.links[3].refuse = True
        assert await put_copied(layer, tmem, pool, 4) == set()
        assert sorted(peers.links[2].pages) == [(1, (1, 0, 0), i) for i in range(4)]
        assert [call[:2] for call in peers.log] == [(3, "put"), (2, "put")]
        assert tmem.counters()["pers_pages_replicated"] == 4
        assert layer.counters["pers_copies_made"] == 4

    run(scenario)


@pytest.mark.parametrize(
    ("config", "calls"),
    [
        (CONFIG, [64, 64, 22]),  # 64 pages a call
        (dataclasses.replace(CONFIG, batch_pages=1024), [128, 22]),  # 256 KiB: 128 of 2034 bytes
    ],
    ids=["pages", "bytes"],
)
def test_the_copies_of_a_put_go_in_calls_within_the_batch_pages_and_bytes(
    config: RemotifyConfig, calls: list[int]
) -> None:
    async def scenario() -> None:
        backend, tmem = loaded(memory=16 * MIB, params=TWO)
        layer, peers = await start(backend, {2: 64 * MIB}, config)
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        assert await put_copied(layer, tmem, pool, 150) == set()
        assert [len(call[2]) for call in peers.calls("put")] == calls  # type: ignore[arg-type]
        assert layer.counters["pers_copies_made"] == 150

    run(scenario)


def test_a_copy_goes_to_each_peer_in_turn_by_free_bytes_until_one_takes_it() -> None:
    async def scenario() -> None:
        backend, tmem = loaded(params=TWO)
        free = {2: MIB, 3: 3 * MIB, 4: 4 * MIB, 5: 2 * MIB, 6: 5 * MIB, 7: 2 * MIB}
        layer, peers = await start(backend, free)
        await layer.set_members(
            layer.members | {6: dataclasses.replace(member(6, 5 * MIB), draining=True)}
        )
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        for number in (3, 4, 5, 7):
            peers.links[number].refuse = True
        assert await put_copied(layer, tmem, pool, 2) == set()
        assert [call[0] for call in peers.calls("put")] == [4, 3, 5, 7, 2]
        assert sorted(peers.links[2].pages) == [(1, (1, 0, 0), 0), (1, (1, 0, 0), 1)]

    run(scenario)


def test_a_put_no_peer_copies_is_refused_and_its_key_is_gone() -> None:
    async def scenario() -> None:
        backend, tmem = loaded(params=TWO)
        layer, peers = await start(backend, {2: MIB})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        peers.links[2].put_error = Unavailable("node 2 is unreachable")
        refused = await put_copied(layer, tmem, pool, 2)
        assert refused == {((1, 0, 0), 0), ((1, 0, 0), 1)}
        assert tmem.get_many(APP, pool, [(1, 0), (1, 1)], free=False) == [None, None]
        assert tmem.counters()["pers_puts_unreplicated"] == 2

    run(scenario)


@pytest.mark.parametrize(
    ("take_back", "named", "left", "unreplicated"),
    [(True, {0, 1}, [None, big(9)], 1), (False, {0}, [big(0), big(9)], 0)],
    ids=["put", "copy-later"],
)
def test_pages_no_peer_took_a_copy_of_are_taken_back_or_left_here_with_one_copy(
    take_back: bool, named: set[int], left: list[bytes | None], unreplicated: int
) -> None:
    """Page 1 is put again while its copy is out: neither contract touches the new version. A
    put that waits for its copies is refused both keys; after the put, only the page still held
    at the version shipped is named."""

    async def scenario() -> None:
        backend, tmem = loaded(params=TWO)
        layer, peers = await start(backend, {2: MIB})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        keys = [((1, 0, 0), i) for i in range(2)]
        outcomes = tmem.put_many(APP, pool, [(1, i, big(i)) for i in range(2)])
        shipments = layer.copies_of_puts(tmem, APP, pool, keys, outcomes)

        def put_again(_: object) -> None:
            tmem.put(APP, pool, 1, 1, big(9))

        peers.links[2].on_put = put_again
        peers.links[2].put_error = Unavailable("node 2 is unreachable")
        copied = await layer.copy(tmem, shipments, take_back)
        assert copied == {((1, 0, 0), i) for i in named}
        assert tmem.get_many(APP, pool, [(1, 0), (1, 1)], free=False) == left
        assert tmem.counters()["pers_puts_unreplicated"] == unreplicated

    run(scenario)


@pytest.mark.parametrize("later", [False, True], ids=["put", "copy-later"])
def test_a_page_a_repair_round_copied_while_its_own_copy_was_out_is_kept(later: bool) -> None:
    async def scenario() -> None:
        backend, tmem = loaded(params=TWO)
        layer, peers = await start(backend, {2: 8 * MIB})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        held = asyncio.Event()
        peers.links[2].put_gates = [held]  # the put's own copy: its answer waits
        keys = [((1, 0, 0), i) for i in range(3)]
        outcomes = tmem.put_many(APP, pool, [(1, i, big(i)) for i in range(3)])
        shipments = layer.copies_of_puts(tmem, APP, pool, keys, outcomes)
        copying = asyncio.create_task(layer.copy(tmem, shipments, take_back=not later))
        await settle()
        assert await layer.repair() == 3
        held.set()
        assert await copying == set()
        assert tmem.get_many(APP, pool, [(1, i) for i in range(3)], free=False) == [
            big(i) for i in range(3)
        ]
        assert (layer.replication.pages_at_risk(), layer.counters["pers_copies_made"]) == (0, 3)

    run(scenario)


def test_alone_a_put_is_acknowledged_with_one_copy_and_counted_at_risk() -> None:
    async def scenario() -> None:
        backend, tmem = loaded(params=TWO)
        layer, peers = await start(backend, {})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        assert await put_copied(layer, tmem, pool, 3) == set()
        assert layer.all_counters()["pers_pages_at_risk"] == 3
        assert peers.log == []
        # A peer arrives: the repair gives every page its second copy.
        await layer.set_members({ME: member(ME, 0), 2: member(2, MIB)})
        assert await layer.repair() == 3
        assert layer.all_counters()["pers_pages_at_risk"] == 0
        assert len(peers.links[2].pages) == 3

    run(scenario)


def test_the_copies_of_a_node_that_left_are_rebuilt_on_another() -> None:
    async def scenario() -> None:
        backend, tmem = loaded(params=TWO)
        layer, peers = await start(backend, {2: MIB, 3: 2 * MIB, 4: MIB})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        assert await put_copied(layer, tmem, pool, 10) == set()  # copies on 3
        shipments = take_shipments(tmem.table, True, 5, ALL)
        assert [s.replica for s in shipments] == [3] * 5
        complete_shipments(tmem.table, 4, shipments, await peers.links[4].put(shipments))

        await layer.set_members({n: member(n, MIB) for n in (ME, 2, 4)})  # 3 left
        assert await layer.repair() == 10
        assert layer.all_counters()["pers_pages_at_risk"] == 0
        # The 5 pages on 4 got their copy on 2; the 5 here got theirs on 2 as well.
        assert len(peers.links[2].pages) == 10
        assert [(r.node, r.replica) for r in remote_refs(tmem.table)] == [(4, 2)] * 5

    run(scenario)
