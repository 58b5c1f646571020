"""The repair loop of `RemoteLayer` (`ramster.remote.replication`, docs/design.md §6) when copies
cannot be made: a lone node with `persistent_copies` 2, or peers that refuse every copy.

The loop must not run away: it counts the pages at risk from the tree's tallies (no scan), scans
nothing while no peer can take a copy, backs off (doubling, capped) while rounds make no copy,
and scans in bounded steps that let other tasks run in between. Waits are observed by standing
in for the layer's `_woken` (the wait is recorded, not slept); the scans by a table of objects
that counts its walks. Fake peers and helpers come from tests/support/remote.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from typing import Any

import pytest

import ramster.remote.layer as layer_module
from ramster.remote.copies import ShortfallScan
from ramster.remote.layer import RemoteLayer
from ramster.remote.replication import REPAIR_BACKOFF_MAX, REPAIR_RETRY
from ramster.tmem import PoolSpec, Tmem
from tests.support.remote import (
    APP,
    BATCH,
    CONFIG,
    ME,
    TWO,
    Clock,
    big,
    loaded,
    member,
    put_copied,
    run,
    start,
)

MIB = 1 << 20


class WalkCounting(dict[int, Any]):
    """The tree's table of objects, counting every walk over it (a scan of the tree)."""

    walks = 0

    def __iter__(self) -> Any:
        self.walks += 1
        return super().__iter__()

    def keys(self) -> Any:
        self.walks += 1
        return super().keys()

    def values(self) -> Any:
        self.walks += 1
        return super().values()

    def items(self) -> Any:
        self.walks += 1
        return super().items()


def watch_walks(tmem: Tmem) -> WalkCounting:
    table = WalkCounting(tmem.table._objects)
    tmem.table._objects = table
    return table


class Waits(list[float]):
    """The timeouts of the loop's waits so far; `parked` is set at the last one allowed."""

    def __init__(self) -> None:
        super().__init__()
        self.parked = asyncio.Event()


def record_waits(monkeypatch: pytest.MonkeyPatch, waits: int, between: Any = None) -> Waits:
    """Stand in for the loop's wait: record each timeout and return at once (the event is not
    waited for), calling `between(n)` before the n-th; park for good at the `waits`-th."""
    seen = Waits()

    async def woken(event: asyncio.Event, timeout: float) -> None:
        seen.append(timeout)
        if between is not None:
            between(len(seen))
        if len(seen) >= waits:
            seen.parked.set()
            await asyncio.Event().wait()
        await asyncio.sleep(0)

    monkeypatch.setattr(layer_module, "_woken", woken)
    return seen


async def run_loop(layer: RemoteLayer, waits: Waits) -> None:
    """Run the repair loop until it parks in its last recorded wait."""
    loop = asyncio.create_task(layer._repair_loop())
    try:
        async with asyncio.timeout(30):  # a loop that never parks fails the test
            await waits.parked.wait()
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


def backoff(rounds: int) -> list[float]:
    return [min(REPAIR_RETRY * 2**n, REPAIR_BACKOFF_MAX) for n in range(rounds)]


def test_alone_the_pages_at_risk_follow_puts_flushes_and_overwrites_without_a_scan() -> None:
    async def scenario() -> None:
        backend, tmem = loaded(params=TWO)
        layer, _ = await start(backend, {})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        assert await put_copied(layer, tmem, pool, 10) == set()
        walks = watch_walks(tmem)
        assert layer.all_counters()["pers_pages_at_risk"] == 10
        tmem.flush_many(APP, pool, [((1, 0, 0), i) for i in range(3)])
        assert layer.all_counters()["pers_pages_at_risk"] == 7
        assert await put_copied(layer, tmem, pool, 5) == set()  # 3 new pages, 2 put again
        assert layer.all_counters()["pers_pages_at_risk"] == 10
        assert tmem.flush_object(APP, pool, 1)
        assert layer.all_counters()["pers_pages_at_risk"] == 0
        assert walks.walks == 0

    run(scenario)


def test_the_pages_whose_copies_a_leaving_peer_held_are_at_risk_at_once() -> None:
    async def scenario() -> None:
        backend, tmem = loaded(params=TWO)
        layer, peers = await start(backend, {2: MIB, 3: 2 * MIB})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        assert await put_copied(layer, tmem, pool, 6) == set()  # copies on 3
        assert layer.all_counters()["pers_pages_at_risk"] == 0
        await layer.set_members({ME: member(ME, 0), 2: member(2, MIB)})  # 3 left
        assert layer.all_counters()["pers_pages_at_risk"] == 6
        assert await layer.repair() == 6
        assert layer.all_counters()["pers_pages_at_risk"] == 0
        assert len(peers.links[2].pages) == 6

    run(scenario)


def test_alone_the_repair_loop_scans_nothing_and_backs_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def scenario() -> None:
        backend, tmem = loaded(params=TWO)
        layer, _ = await start(backend, {})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        assert await put_copied(layer, tmem, pool, 3 * BATCH) == set()
        walks = watch_walks(tmem)

        def put_more(wait: int) -> None:  # puts keep coming meanwhile
            if wait == 3:
                tmem.put(APP, pool, 2, 0, big(0))
                layer.wake()

        waits = record_waits(monkeypatch, 7, put_more)
        await run_loop(layer, waits)
        assert waits == backoff(7)
        assert walks.walks == 0
        assert layer.counters["repair_rounds"] == 0
        assert layer.all_counters()["pers_pages_at_risk"] == 3 * BATCH + 1

    run(scenario)


def test_while_every_peer_refuses_copies_a_round_ends_at_once_and_the_loop_backs_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def scenario() -> None:
        clock = Clock().install(monkeypatch)
        backend, tmem = loaded(params=TWO)
        layer, peers = await start(backend, {})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        assert await put_copied(layer, tmem, pool, 3 * BATCH) == set()
        await layer.set_members({n: member(n, MIB) for n in (ME, 2, 3)})  # both full
        for link in peers.links.values():
            link.refuse = True

        def peers_back(wait: int) -> None:
            clock.now += 60.0  # every failed peer may be tried again
            if wait == 5:  # node 2 has room again
                peers.links[2].refuse = False

        waits = record_waits(monkeypatch, 8, peers_back)
        await run_loop(layer, waits)
        # Each round offers the first pages to each peer once and ends when both refuse; the
        # round after node 2 takes them copies every page, and the loop waits as usual again.
        assert waits == [*backoff(5), REPAIR_RETRY, REPAIR_RETRY, REPAIR_RETRY]
        refused = [call[0] for call in peers.calls("put")][:8]
        assert refused == [2, 3] * 4
        assert all(len(call[2]) == BATCH for call in peers.calls("put"))  # type: ignore[arg-type]
        assert len(peers.links[2].pages) == 3 * BATCH
        assert layer.all_counters()["pers_pages_at_risk"] == 0

    run(scenario)


def test_a_repair_pass_scans_in_bounded_steps_and_lets_other_tasks_run_between(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def scenario() -> None:
        backend, tmem = loaded(params=TWO)
        layer, peers = await start(backend, {})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        assert await put_copied(layer, tmem, pool, 3 * BATCH + 5) == set()
        await layer.set_members({ME: member(ME, 0), 2: member(2, 4 * MIB)})

        ticks = 0

        async def ticker() -> None:  # stands for the requests the node serves meanwhile
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        steps: list[tuple[int, int, int]] = []  # (limit, pages found, ticks) of each step
        step = ShortfallScan.step

        def recorded(scan: ShortfallScan, *args: Any, **kwargs: Any) -> Any:
            found = step(scan, *args, **kwargs)
            steps.append((kwargs.get("limit", args[-1]), len(found), ticks))
            return found

        monkeypatch.setattr(ShortfallScan, "step", recorded)
        other = asyncio.create_task(ticker())
        assert await layer.repair() == 3 * BATCH + 5
        other.cancel()
        assert [(limit, found) for limit, found, _ in steps] == [(BATCH, BATCH)] * 3 + [(BATCH, 5)]
        assert all(a[2] < b[2] for a, b in itertools.pairwise(steps))
        assert len(peers.links[2].pages) == 3 * BATCH + 5

    run(scenario)


def test_pages_with_a_copy_on_a_draining_peer_are_at_risk_until_it_is_moved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def scenario() -> None:
        clock = Clock().install(monkeypatch)
        backend, tmem = loaded(params=TWO)
        layer, peers = await start(backend, {2: MIB, 3: 2 * MIB})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        assert await put_copied(layer, tmem, pool, 6) == set()  # copies on 3
        view = {n: member(n, MIB) for n in (ME, 2)}
        await layer.set_members(view | {3: dataclasses.replace(member(3, MIB), draining=True)})
        peers.links[2].refuse = True
        assert await layer.repair() == 0
        assert layer.all_counters()["pers_pages_at_risk"] == 6  # their other copy is on 3
        peers.links[2].refuse = False
        clock.now += CONFIG.failure_backoff  # node 2 may be tried again
        assert await layer.repair() == 6
        assert layer.all_counters()["pers_pages_at_risk"] == 0
        assert len(peers.links[2].pages) == 6

    run(scenario)
