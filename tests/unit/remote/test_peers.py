"""The links, the view and placement of the remote layer (`ramster.remote.peers`, docs/design.md §5,
§6): links follow the members, a peer that fails is skipped (its pages kept or placed elsewhere)
until its failure backoff has passed, and a holder gone for `origin_grace` is let go of. Over a
real `Backend` with fake peers (tests/support/remote.py); the pure placement rules are in
test_policy.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import cast

import pytest

from ramster.errors import Unavailable
from ramster.page import pack_page
from ramster.remote.handles import RemoteFlush, Unanswered
from ramster.remote.shipping import remote_refs, take_shipments
from ramster.tmem import Hit, PoolSpec
from tests.support.remote import (
    APP,
    BATCH,
    CONFIG,
    ME,
    MIB,
    TWO,
    Clock,
    big,
    fetched,
    fill_above_high,
    loaded,
    member,
    put,
    put_copied,
    ref_of,
    run,
    settle,
    ship,
    start,
    store_of,
)


def test_links_follow_the_members() -> None:
    async def scenario() -> None:
        backend, _ = loaded()
        layer, peers = await start(backend, {2: 10, 3: 10})
        assert sorted(peers.links) == [2, 3]  # never a link to itself
        assert peers.links[2].origin == (ME, "e1", CONFIG.peer_timeout)
        assert repr(layer) == "<RemoteLayer node 1 peers=[2, 3]>"

        moved = dataclasses.replace(member(3, 10), address="10.0.0.3:7003")
        old3 = peers.links[3]
        await layer.set_members({ME: member(ME, 0), 3: moved})
        assert peers.links[2].closed  # node 2 left
        assert old3.closed and peers.links[3] is not old3
        assert peers.links[3].address == "10.0.0.3:7003"
        assert repr(layer) == "<RemoteLayer node 1 peers=[3]>"

        await layer.stop()
        assert peers.links[3].closed
        assert len(peers.made) == 3

    run(scenario)


@pytest.mark.parametrize("failure", ["raises", "refuses"])
def test_a_failed_peer_keeps_the_pages_local_and_another_peer_takes_them(failure: str) -> None:
    async def scenario() -> None:
        backend, tmem = loaded(memory=MIB)
        store = store_of(backend)
        layer, peers = await start(backend, {2: 2 * MIB, 3: MIB})
        pool, pages = fill_above_high(tmem, store, big)
        before = store.used_bytes
        if failure == "raises":
            peers.links[2].put_error = Unavailable("node 2 is unreachable")
        else:
            peers.links[2].refuse = True

        assert await layer.tick() == 0

        assert peers.log == [(2, "put", [((7, 0, 0), i) for i in range(BATCH)])]
        counters = tmem.counters()
        assert counters["eph_pages_remote_failed"] == BATCH
        assert counters["remote_pages"] == 0
        assert store.used_bytes == before
        assert store.stats.eph_zpages == pages
        [local] = tmem.get_many_packed(APP, pool, [(7, 0)])
        assert isinstance(local, Hit) and local.page == pack_page(big(0))

        assert await layer.tick() == BATCH  # node 2 is skipped for now: node 3 takes a batch
        assert [(node, method) for node, method, _ in peers.log[1:]] == [(3, "put")]
        assert {ref.node for ref in remote_refs(tmem.table)} == {3}
        assert len(peers.links[3].pages) == BATCH

    run(scenario)


def test_a_failed_peer_is_skipped_until_the_backoff_has_passed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock().install(monkeypatch)

    async def scenario() -> None:
        backend, tmem = loaded(memory=MIB)
        store = store_of(backend)
        layer, peers = await start(backend, {2: MIB})
        pool, _ = fill_above_high(tmem, store, big)
        peers.links[2].put_error = Unavailable("node 2 is unreachable")
        assert await layer.tick() == 0
        assert len(peers.log) == 1
        peers.links[2].put_error = None

        clock.now = 100.0 + CONFIG.failure_backoff - 0.001
        assert await layer.tick() == 0
        assert len(peers.log) == 1  # not even tried: there is no other peer

        clock.now = 100.0 + CONFIG.failure_backoff
        assert await layer.tick() == BATCH
        # The failed put may have stored its pages before its answer was lost: their flushes
        # go first, then the new batch.
        [(_, _, failed), (_, flush, flushed), (node, method, keys)] = peers.log
        assert flush == "flush"
        assert [(f.oid, f.index) for f in cast(list[RemoteFlush], flushed)] == failed
        assert (node, method) == (2, "put")
        # The pages of the failed batch went back to the young end of the order.
        assert keys == [((7, 0, 0), i) for i in range(BATCH, 2 * BATCH)]
        assert tmem.counters()["remote_pages"] == BATCH
        [local] = tmem.get_many_packed(APP, pool, [(7, 0)])
        assert isinstance(local, Hit)

    run(scenario)


def test_a_holder_gone_for_origin_grace_has_the_pages_only_it_held_written_off_as_lost() -> None:
    """Item 12 seen from the origin: a page whose only copy is on a node out of the view stays
    UNAVAILABLE while that node may come back, and becomes a counted loss (a miss, not
    UNAVAILABLE for ever) once the node has been gone for origin_grace."""

    async def scenario() -> None:
        backend, tmem = loaded()
        layer, peers = await start(backend, {2: MIB, 3: MIB})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        for index in range(3):
            put(tmem, pool, 7, index, big(index))
        ship(tmem, peers.links[2], True, max_pages=2)
        ship(tmem, peers.links[3], True)
        refs = [ref_of(tmem, pool, 7, index) for index in range(3)]
        assert [ref.node for ref in refs] == [2, 2, 3]

        await layer.set_members({ME: member(ME, 0), 3: member(3, MIB)})  # 2 leaves the view
        assert layer.forget_gone(now=1000.0, grace=60.0, trusted=True) == []
        assert layer.forget_gone(now=1059.0, grace=60.0, trusted=True) == []
        assert await fetched(layer, refs[:1]) == [Unanswered((2,))]

        assert layer.forget_gone(now=1060.0, grace=60.0, trusted=True) == [2]
        assert [tmem.page_version(APP, pool, 7, index) is None for index in range(3)] == [
            True,
            True,
            False,
        ]
        assert tmem.counters()["remote_pers_pages_lost"] == 2
        assert layer.counters["origins_forgotten"] == 1
        assert [ref.node for ref in remote_refs(tmem.table)] == [3]
        assert await fetched(layer, [refs[2]]) == [pack_page(big(2))]
        assert layer.forget_gone(now=2000.0, grace=60.0, trusted=True) == []  # nothing of 2 left

    run(scenario)


def test_a_refused_introduction_is_tried_again_soon_then_half_as_often(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock().install(monkeypatch)

    async def scenario() -> None:
        backend, _ = loaded(params=TWO)
        layer, peers = await start(backend, {2: MIB})
        peers_of = layer.peers
        link = peers.links[2]
        # A peer that has just started does not know this node yet: it refuses, "retry shortly".
        link.forget_error = Unavailable("origin.node_number 1 is no member this node knows yet")
        peers_of.unsure(2, [])

        tried: list[tuple[float, int, bool]] = []
        for now in (100.0, 100.099, 100.1, 100.299, 100.3, 100.7, 101.5, 103.1, 105.1, 107.1):
            clock.now = now
            await peers_of.introduce()
            tried.append((now, link.forgets, 2 in peers_of.introduced))
        # 0.1 s after the first refusal, then 0.2, 0.4, 0.8, 1.6, and failure_backoff (2 s).
        assert [(now, count) for now, count, _ in tried] == [
            (100.0, 1), (100.099, 1), (100.1, 2), (100.299, 2), (100.3, 3), (100.7, 4),
            (101.5, 5), (103.1, 6), (105.1, 7), (107.1, 8),
        ]  # fmt: skip
        assert not any(introduced for _, _, introduced in tried)

        link.forget_error = None
        clock.now = 109.1
        await peers_of.introduce()
        assert 2 in peers_of.introduced
        # Refused again later: the first retry is soon again.
        peers_of.unsure(2, [])
        link.forget_error = Unavailable("origin.epoch 'e1' is not the epoch node 1 runs in")
        await peers_of.introduce()
        clock.now = 109.2
        link.forget_error = None
        await peers_of.introduce()
        assert 2 in peers_of.introduced

    run(scenario)


def test_a_put_cut_off_by_a_departure_fails_at_once_and_is_flushed_on_the_link_it_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock().install(monkeypatch)

    async def scenario() -> None:
        backend, tmem = loaded(params=TWO)
        layer, peers = await start(backend, {2: MIB, 3: 2 * MIB})
        holder = peers.links[3]  # the most free bytes: the copies go there first
        holder.put_gate.clear()  # the copies land, their answer is lost with the network
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        copying = asyncio.create_task(put_copied(layer, tmem, pool, 2))
        await settle()
        uid = tmem.pool_uid(APP, pool)
        assert (holder.puts_out, sorted(holder.pages)) == (1, [(uid, (1, 0, 0), i) for i in (0, 1)])
        owed = [RemoteFlush(3, *key, version) for key, (_, version) in sorted(holder.pages.items())]

        without3 = {ME: member(ME, 0), 2: member(2, MIB)}
        await layer.set_members(without3)
        await settle()
        assert copying.done(), "a put in flight to a peer that left must not wait for it"
        assert await copying == set()  # copied on node 2 instead, and acknowledged
        assert [call[0] for call in peers.calls("put")] == [3, 2]
        # The put may still be delivered later, so its link stays open: its flushes must
        # arrive after it, which only the connection that carried it ensures.
        assert not holder.closed

        await layer.set_members(without3 | {3: member(3, 2 * MIB)})  # back, same process
        assert (peers.made, layer.peers.links[3]) == ([peers.links[2], holder], holder)
        clock.now += CONFIG.failure_backoff  # it failed a call: introduced once that has passed
        await layer.peers.introduce()
        assert holder.pages == {}  # the copies nobody references are flushed from it
        assert peers.log[-1] == (3, "flush", owed)

    run(scenario)


@pytest.mark.parametrize("end", ["restarted", "moved", "let go", "stopped"])
def test_the_link_kept_for_a_peer_that_left_is_closed_once_nothing_abandoned_can_reach_it(
    end: str,
) -> None:
    async def scenario() -> None:
        backend, tmem = loaded(params=TWO)
        layer, peers = await start(backend, {2: MIB, 3: 2 * MIB})
        holder = peers.links[3]
        holder.put_gate.clear()
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        copying = asyncio.create_task(put_copied(layer, tmem, pool, 1))
        await settle()
        without3 = {ME: member(ME, 0), 2: member(2, MIB)}
        await layer.set_members(without3)
        assert await copying == set()
        assert not holder.closed

        if end == "restarted":  # its memory, and the calls it was sent, are gone
            back = dataclasses.replace(member(3, 2 * MIB), epoch="e3-restarted")
            await layer.set_members(without3 | {3: back})
        elif end == "moved":
            back = dataclasses.replace(member(3, 2 * MIB), address="10.0.0.3:7003")
            await layer.set_members(without3 | {3: back})
        elif end == "let go":
            assert layer.forget_gone(now=1000.0, grace=60.0, trusted=True) == []
            assert layer.forget_gone(now=1060.0, grace=60.0, trusted=True) == [3]
            await settle()
        else:
            await layer.stop()
        assert holder.closed
        if end in ("restarted", "moved"):
            assert layer.peers.links[3] is peers.made[-1] is not holder

    run(scenario)


def test_placement_sends_each_page_to_the_best_peer_not_tried_and_retries_the_refused() -> None:
    async def scenario() -> None:
        backend, tmem = loaded()
        layer, peers = await start(backend, {2: 3 * MIB, 3: 2 * MIB, 4: MIB})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        for index in range(5):
            put(tmem, pool, 7, index, big(index))
        shipments = take_shipments(tmem.table, True, 5, 1 << 30)
        peers.links[2].refuse = True
        nowhere: frozenset[int] = frozenset()
        avoid = [nowhere, frozenset({2}), nowhere, frozenset({2, 3}), frozenset({2, 3, 4})]

        placed = await layer.peers.place(tmem, shipments, avoid)

        # Pages that avoid the same nodes go together; those node 2 refused go to node 3 next,
        # and a page with every peer to avoid goes nowhere.
        assert placed == [3, 3, 3, 4, None]
        assert peers.calls("put") == [
            (2, "put", [((7, 0, 0), 0), ((7, 0, 0), 2)]),
            (3, "put", [((7, 0, 0), 1)]),
            (4, "put", [((7, 0, 0), 3)]),
            (3, "put", [((7, 0, 0), 0), ((7, 0, 0), 2)]),
        ]

    run(scenario)
