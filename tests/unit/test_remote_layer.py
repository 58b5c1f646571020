"""`RemoteLayer`, the async half of RAMster (`ramster.remote.layer`, DESIGN §5, reference §A5),
over a real `Backend` with fake peer links: no network, no sleeps.

A `FakePeer` has the `PeerLink` surface (put/get/flush/close/address/number), keeps what it is
sent as a holder would (a page flush removes only the version it names, version 0 any), logs
every call in one list shared by all peers (so the order of calls across peers is visible), and
can be told to fail, refuse, hold a get or the answer to a put until released, or act while a
put or flush is on the wire. Every test runs its own event loop with `asyncio.run`.
Budgets and batch counts are computed from the store's own constants and the core's (a shipped
page still costs its handle, `REMOTE_PAGE_BYTES`); the pure decisions the layer follows are in
test_remote_policy.py and the core it calls in test_shipping.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, cast

import pytest

import ramster.remote.layer as layer_module
from nodemanager.model import MemberInfo
from ramster.backend import Backend
from ramster.errors import FailedPrecondition, RamsterError, Unavailable
from ramster.params import ModuleParams
from ramster.remote.layer import RemoteLayer
from ramster.remote.links import PeerLink
from ramster.remote.policy import RemotifyConfig
from ramster.tmem import Hit, Oid, PackedPage, PoolSpec, Stored, Tmem
from ramster.tmem.host import REMOTE_PAGE_BYTES
from ramster.tmem.pool import OBJECT_BYTES
from ramster.tmem.remote import RemoteFlush, RemoteRef, Shipment, Unanswered
from ramster.tmem.shipping import complete_shipments, drain_flushes, remote_refs, take_shipments
from ramster.zcache import ZCache, ZcacheConfig
from ramster.zcache.codec import compress_page, pack_page
from ramster.zcache.store import PAGE_BYTES, SLOT_BYTES, payload_heap_bytes

APP = "app"
ME = 1
PAGE_SIZE = 4096
ALL = 1 << 30
MIB = 1 << 20
CONFIG = RemotifyConfig(batch_pages=64, batch_bytes=256 * 1024, failure_backoff=2.0)
BATCH = 64
"""Pages per batch in every test: 64 pages of either size below stay under 256 KiB packed."""

Log = list[tuple[int, str, object]]
FoundPage = tuple[PackedPage, int]


def big(seed: int) -> bytes:
    """A page lz4 packs to 2034 bytes."""
    return random.Random(seed).randbytes(2000) + bytes(PAGE_SIZE - 2000)


def small(seed: int) -> bytes:
    """A page lz4 packs to about 1000 bytes (1072 heap bytes)."""
    return random.Random(seed).randbytes(990) + bytes(PAGE_SIZE - 990)


def cost(data: bytes) -> int:
    """Budget bytes a stored page frees when it leaves the store (its slot stays)."""
    payload, _ = compress_page(data)
    return payload_heap_bytes(len(payload)) + PAGE_BYTES


def shipped_cost(data: bytes) -> int:
    """Budget bytes shipping a page frees: its own, less its remote handle."""
    return cost(data) - REMOTE_PAGE_BYTES


class FakePeer:
    """A peer link that holds pages like a holder would and logs every call."""

    def __init__(
        self, number: int, address: str, me: int, epoch: str, timeout: float, log: Log
    ) -> None:
        self.number = number
        self.address = address
        self.origin = (me, epoch, timeout)
        self.log = log
        self.pages: dict[tuple[int, Oid, int], FoundPage] = {}
        self.corrupt_pages = 0
        self.put_error: RamsterError | None = None
        self.get_error: RamsterError | None = None
        self.flush_error: RamsterError | None = None
        self.refuse = False
        self.on_put: Callable[[Sequence[Shipment]], None] | None = None
        self.on_flush: Callable[[Sequence[RemoteFlush]], None] | None = None
        self.gate = asyncio.Event()
        self.gate.set()
        self.put_gate = asyncio.Event()
        """Cleared: a put stores its pages, then its answer waits for the gate (a slow link)."""
        self.put_gate.set()
        self.put_gates: list[asyncio.Event] = []
        """Gates of the next puts, one each and in order, before `put_gate` again."""
        self.puts_out = 0
        """Puts sent and not answered yet; `most_puts_out` is the most there ever were."""
        self.most_puts_out = 0
        self.closed = False

    async def put(self, shipments: Sequence[Shipment], owners: Sequence[object] = ()) -> list[bool]:
        self.log.append((self.number, "put", [(s.oid, s.index) for s in shipments]))
        if self.on_put is not None:
            self.on_put(shipments)
        if self.put_error is not None:
            raise self.put_error
        if self.refuse:
            return [False] * len(shipments)
        for s in shipments:
            self.pages[s.pool_uid, s.oid, s.index] = (s.page, s.version)
        gate = self.put_gates.pop(0) if self.put_gates else self.put_gate
        self.puts_out += 1
        self.most_puts_out = max(self.most_puts_out, self.puts_out)
        try:
            await gate.wait()
        finally:
            self.puts_out -= 1
        return [True] * len(shipments)

    async def get(
        self, refs: Sequence[RemoteRef], timeout: float | None = None
    ) -> list[FoundPage | None]:
        self.log.append((self.number, "get", [(r.oid, r.index) for r in refs]))
        await self.gate.wait()
        if self.get_error is not None:
            raise self.get_error
        return [self.pages.get((r.pool_uid, r.oid, r.index)) for r in refs]

    async def flush(self, flushes: Sequence[RemoteFlush]) -> int:
        self.log.append((self.number, "flush", list(flushes)))
        if self.on_flush is not None:
            self.on_flush(flushes)
        if self.flush_error is not None:
            raise self.flush_error
        found = 0
        for f in flushes:
            doomed = [
                key
                for key, (_, version) in self.pages.items()
                if key[0] == f.pool_uid
                and (f.oid is None or key[1] == f.oid)
                and (f.index is None or key[2] == f.index)
                and f.version in (0, version)
            ]
            for key in doomed:
                del self.pages[key]
            found += bool(doomed)
        return found

    async def recover(
        self, keep: str, timeout: float
    ) -> tuple[list[str], list[object], list[object]]:
        return [], [], []  # it holds nothing of an earlier epoch of ME

    async def forget(self) -> bool:
        return False

    async def close(self) -> None:
        self.closed = True


class Peers:
    """The link factory: every link it made, by node number, and their shared call log."""

    def __init__(self) -> None:
        self.log: Log = []
        self.links: dict[int, FakePeer] = {}
        self.made: list[FakePeer] = []

    def factory(self, number: int, address: str, me: int, epoch: str, timeout: float) -> PeerLink:
        link = FakePeer(number, address, me, epoch, timeout, self.log)
        self.links[number] = link
        self.made.append(link)
        return cast(PeerLink, link)

    def calls(self, method: str) -> list[tuple[int, str, object]]:
        return [call for call in self.log if call[1] == method]


class Clock:
    """Stands in for the `time` module inside the layer: failure backoff (and the busy time of
    shipping) without sleeping."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    def perf_counter(self) -> float:
        return self.now


def member(number: int, free: int) -> MemberInfo:
    return MemberInfo(
        number=number,
        name=f"node{number}",
        address=f"127.0.0.1:{7000 + number}",
        epoch=f"e{number}",
        capacity_bytes=4 * MIB,
        free_bytes=free,
    )


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


async def settle() -> None:
    """Let every task run until all wait for something the test controls (no sleeping)."""
    for _ in range(50):
        await asyncio.sleep(0)


async def start(
    backend: Backend, free: dict[int, int], config: RemotifyConfig = CONFIG
) -> tuple[RemoteLayer, Peers]:
    """A layer for node ME (not started: tests drive `tick` themselves) and its fake peers."""
    peers = Peers()
    layer = RemoteLayer(backend, lambda: ME, "e1", config, link_factory=peers.factory)
    view = {ME: member(ME, 0)} | {number: member(number, f) for number, f in free.items()}
    await layer.set_members(view)
    await layer.recover()
    return layer, peers


def loaded(memory: int = 4 * MIB, params: ModuleParams | None = None) -> tuple[Backend, Tmem]:
    """A backend keeping one copy of a persistent page unless `params` say otherwise (second
    copies are tested at the end of this module and in test_copies.py)."""
    backend = Backend(
        ZcacheConfig(memory=memory), params=params or ModuleParams(persistent_copies=1)
    )
    assert backend.tmem is not None
    return backend, backend.tmem


def store_of(backend: Backend) -> ZCache:
    assert backend.store is not None
    return backend.store


def put(tmem: Tmem, pool: int, oid: int, index: int, data: bytes) -> int:
    outcome = tmem.put(APP, pool, oid, index, data)
    assert isinstance(outcome, Stored), outcome
    return outcome.version


def ship(tmem: Tmem, peer: FakePeer, persistent: bool, max_pages: int = 1000) -> list[Shipment]:
    """Move the oldest pages of a class to `peer` through the core, as a tick would."""
    shipments = take_shipments(tmem, persistent, max_pages, ALL)
    for s in shipments:
        peer.pages[s.pool_uid, s.oid, s.index] = (s.page, s.version)
    assert complete_shipments(tmem, peer.number, shipments, [True] * len(shipments)) == len(
        shipments
    )
    return shipments


def ref_of(tmem: Tmem, pool: int, oid: int, index: int) -> RemoteRef:
    [found] = tmem.get_many_packed(APP, pool, [(oid, index)])
    assert isinstance(found, RemoteRef), found
    return found


async def fetched(
    layer: RemoteLayer, refs: Sequence[RemoteRef], keep: bool = False
) -> list[PackedPage | Unanswered | None]:
    """What `layer.fetch` answers for `refs`, a page for each hit. Only with `keep` (a get that
    does not free) may persistent pages come home: tests of other rules leave them remote."""
    return [
        found.page if isinstance(found, Hit) else found for found in await layer.fetch(refs, keep)
    ]


def fill_above_high(tmem: Tmem, store: ZCache, make: Callable[[int], bytes]) -> tuple[int, int]:
    """Put the fewest pages of `make` in one new ephemeral object that take the store above its
    high watermark; (pool, pages)."""
    config = store.config
    per_page = SLOT_BYTES + cost(make(0))
    pages = int((config.high_watermark * config.memory - OBJECT_BYTES) // per_page) + 1
    pool = tmem.new_pool(APP, PoolSpec())
    for index in range(pages):
        put(tmem, pool, 7, index, make(index))
    assert store.used_bytes == OBJECT_BYTES + pages * per_page
    assert config.high_watermark * config.memory < store.used_bytes <= config.memory
    return pool, pages


def test_the_pages_cost_what_the_batch_counts_assume() -> None:
    assert {cost(big(seed)) for seed in range(1000)} == {2080 + PAGE_BYTES}
    assert {cost(small(seed)) for seed in range(1000)} == {1072 + PAGE_BYTES}
    assert BATCH * len(compress_page(big(0))[0]) < CONFIG.batch_bytes


# -- membership --------------------------------------------------------------------------------


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


# -- tick: shipping under pressure -------------------------------------------------------------


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


def test_an_undrained_node_stops_evacuating_its_persistent_pages() -> None:
    async def scenario() -> None:
        backend, tmem = loaded(memory=MIB)
        layer, peers = await start(backend, {2: MIB})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        for index in range(10):
            put(tmem, pool, 7, index, big(index))
        layer.evacuate()
        layer.stop_evacuating()
        assert await layer.tick() == 0  # below the watermark: nothing to ship
        assert peers.log == []
        layer.evacuate()
        assert await layer.tick() == 10  # draining: every page leaves, whatever the watermark

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
        assert {ref.node for ref in remote_refs(tmem)} == {3}
        assert len(peers.links[3].pages) == BATCH

    run(scenario)


def test_a_failed_peer_is_skipped_until_the_backoff_has_passed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(layer_module, "time", clock)

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


def fill_to_the_brim(tmem: Tmem, store: ZCache) -> int:
    """Fill the store with as many small ephemeral pages (object 7) as it takes; their pool."""
    pool = tmem.new_pool(APP, PoolSpec())
    pages = (store.config.memory - OBJECT_BYTES) // (SLOT_BYTES + cost(small(0)))
    for index in range(pages):
        put(tmem, pool, 7, index, small(index))
    return pool


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
        assert tmem.remote_flushes == []
        slow.set()
        assert await ticking == BATCH + 1  # the old copy is an orphan, not a remote page

        # Its flush is queued now, after the new copy arrived, and goes out with the next tick.
        assert tmem.remote_flushes == [RemoteFlush(2, uid, (5, 0, 0), 0, old)]
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


# -- gets of remote pages ----------------------------------------------------------------------


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
        assert remote_refs(tmem) == [ref]

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
        assert drain_flushes(tmem) == [RemoteFlush.of(2, shipment)]

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
        assert [ref.node for ref in remote_refs(tmem)] == [3]
        assert await fetched(layer, [refs[2]]) == [pack_page(big(2))]
        assert layer.forget_gone(now=2000.0, grace=60.0, trusted=True) == []  # nothing of 2 left

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
        assert remote_refs(tmem) == [ref]
        counters = tmem.counters()
        assert counters["remote_pers_pages_unsucc_get"] == 0
        assert counters["remote_pers_pages_lost"] == 0
        assert layer.counters["remote_gets_sent"] == 0
        assert layer._inflight == {}

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
        assert drain_flushes(tmem) == [RemoteFlush.of(2, shipment)]

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
            assert drain_flushes(tmem) == [RemoteFlush.of(2, shipment)]
        else:  # no room: it stays on the peer
            assert found == ref
            assert drain_flushes(tmem) == []

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
        await holder.flush(drain_flushes(tmem))
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
        assert drain_flushes(tmem) == [RemoteFlush.of(2, newer)]

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


# -- bring_home: switching ramster off ---------------------------------------------------------


def test_bring_home_repatriates_persistent_pages_and_drops_ephemeral_ones() -> None:
    async def scenario() -> None:
        backend, tmem = loaded()
        store = store_of(backend)
        layer, peers = await start(backend, {2: MIB, 3: MIB})
        pers = tmem.new_pool(APP, PoolSpec(persistent=True))
        eph = tmem.new_pool(APP, PoolSpec())
        versions = [put(tmem, pers, 7, index, big(index)) for index in range(3)]
        eph_versions = [put(tmem, eph, 8, index, big(10 + index)) for index in range(2)]
        to2 = ship(tmem, peers.links[2], True, max_pages=2)
        [to3] = ship(tmem, peers.links[3], True)
        eph_uid = ship(tmem, peers.links[2], False)[0].pool_uid
        assert store.stats.pers_zpages == store.stats.eph_zpages == 0

        assert await layer.bring_home() == 3

        uid = to3.pool_uid
        assert peers.log == [
            # Every persistent page is fetched first; the copies of those now home are then
            # flushed, one batch per holder, each flush naming the version brought home.
            (2, "get", [((7, 0, 0), 0), ((7, 0, 0), 1)]),
            (3, "get", [((7, 0, 0), 2)]),
            (
                2,
                "flush",
                [
                    RemoteFlush(2, uid, (7, 0, 0), 0, versions[0]),
                    RemoteFlush(2, uid, (7, 0, 0), 1, versions[1]),
                ],
            ),
            (3, "flush", [RemoteFlush(3, uid, (7, 0, 0), 2, versions[2])]),
            # The ephemeral pages are given up, and their copies flushed: one flush a page.
            (
                2,
                "flush",
                [
                    RemoteFlush(2, eph_uid, (8, 0, 0), 0, eph_versions[0]),
                    RemoteFlush(2, eph_uid, (8, 0, 0), 1, eph_versions[1]),
                ],
            ),
        ]
        assert [s.index for s in to2] == [0, 1]
        assert [tmem.page_version(APP, pers, 7, index) for index in range(3)] == versions
        assert [tmem.get(APP, pers, 7, index) for index in range(3)] == [
            big(index) for index in range(3)
        ]
        assert store.stats.pers_zpages == 3
        assert [tmem.page_version(APP, eph, 8, index) for index in range(2)] == [None, None]
        counters = tmem.counters()
        assert counters["pers_pages_repatriated"] == 3
        assert counters["remote_pages"] == counters["remote_pers_pages"] == 0
        assert counters["remote_eph_pages_unsucc_get"] == 0  # giving a page up is not a get
        assert peers.links[2].pages == peers.links[3].pages == {}

    run(scenario)


def test_bring_home_with_nothing_remote_does_nothing() -> None:
    async def scenario() -> None:
        backend, tmem = loaded()
        layer, peers = await start(backend, {2: MIB})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        put(tmem, pool, 7, 0, big(1))
        assert await layer.bring_home() == 0
        assert peers.log == []

    run(scenario)


def test_bring_home_refuses_when_the_store_cannot_take_every_page() -> None:
    fit = 32
    page_cost = cost(big(0))

    async def scenario() -> None:
        backend, tmem = loaded(memory=OBJECT_BYTES + fit * (SLOT_BYTES + page_cost))
        store = store_of(backend)
        layer, peers = await start(backend, {2: MIB})
        pers = tmem.new_pool(APP, PoolSpec(persistent=True))
        versions = [put(tmem, pers, 7, index, big(index)) for index in range(fit)]
        assert store.used_bytes == store.config.memory
        shipped = ship(tmem, peers.links[2], True, max_pages=5)
        eph = tmem.new_pool(APP, PoolSpec())  # a remote ephemeral page, in an object of its own
        put(tmem, eph, 8, 0, bytes(PAGE_SIZE))
        ship(tmem, peers.links[2], False)
        for index in range(fit, fit + 2):
            put(tmem, pers, 7, index, big(index))
        room = store.config.memory - store.used_bytes
        # Shipped slots are reused; six handles stay: two pages fit, not three.
        assert room == 3 * page_cost - OBJECT_BYTES - 6 * REMOTE_PAGE_BYTES
        assert 2 * page_cost <= room < 3 * page_cost

        with pytest.raises(FailedPrecondition) as caught:
            await layer.bring_home()

        assert caught.value.message == (
            "3 persistent pages could not come home (store full or holder unreachable): "
            "ramster stays on"
        )
        uid = shipped[0].pool_uid
        assert peers.log == [
            (2, "get", [((7, 0, 0), i) for i in range(5)]),
            (
                2,
                "flush",
                [
                    RemoteFlush(2, uid, (7, 0, 0), 0, versions[0]),
                    RemoteFlush(2, uid, (7, 0, 0), 1, versions[1]),
                ],
            ),
        ]
        assert tmem.counters()["pers_pages_repatriated"] == 2
        assert sorted(ref.index for ref in remote_refs(tmem, persistent=True)) == [2, 3, 4]
        # Ramster stays on: the remote ephemeral page is kept too.
        assert [ref.oid for ref in remote_refs(tmem, persistent=False)] == [(8, 0, 0)]
        home = 2 * (page_cost - REMOTE_PAGE_BYTES)  # each page home gives its handle back
        assert store.used_bytes == store.config.memory - (room - home)

    run(scenario)


def test_bring_home_survives_a_holder_that_fails_the_flush_of_the_copies() -> None:
    async def scenario() -> None:
        backend, tmem = loaded()
        layer, peers = await start(backend, {2: MIB})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        put(tmem, pool, 7, 0, big(1))
        ship(tmem, peers.links[2], True)
        peers.links[2].flush_error = Unavailable("node 2 is unreachable")

        assert await layer.bring_home() == 1

        assert tmem.get(APP, pool, 7, 0) == big(1)
        assert remote_refs(tmem) == []

    run(scenario)


def test_bring_home_with_an_unreachable_holder_refuses() -> None:
    async def scenario() -> None:
        backend, tmem = loaded()
        layer, peers = await start(backend, {2: MIB})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        version = put(tmem, pool, 7, 0, big(1))
        eph = tmem.new_pool(APP, PoolSpec())
        put(tmem, eph, 8, 0, big(2))
        [shipment] = ship(tmem, peers.links[2], True)
        ship(tmem, peers.links[2], False)
        peers.links[2].get_error = Unavailable("node 2 is unreachable")

        with pytest.raises(FailedPrecondition) as caught:
            await layer.bring_home()
        assert caught.value.message == (
            "1 persistent pages could not come home (store full or holder unreachable): "
            "ramster stays on"
        )
        # Everything stays as it was: both pages remote, both copies on the holder.
        assert peers.log == [(2, "get", [((7, 0, 0), 0)])]
        assert tmem.page_version(APP, pool, 7, 0) == version
        assert sorted(ref.persistent for ref in remote_refs(tmem)) == [False, True]
        assert len(peers.links[2].pages) == 2
        assert tmem.counters()["pers_pages_repatriated"] == 0

        peers.links[2].get_error = None  # it is back: the page comes home
        assert await layer.bring_home() == 1
        assert tmem.get(APP, pool, 7, 0) == big(1)
        assert tmem.page_version(APP, pool, 7, 0) == shipment.version

    run(scenario)


# -- second copies (persistent_copies 2) -------------------------------------------------------

TWO = ModuleParams()  # the default: two copies of every persistent page


async def put_copied(layer: RemoteLayer, tmem: Tmem, pool: int, count: int) -> set[tuple[Oid, int]]:
    """Put `count` pages of object 1 and have the layer copy them; the keys refused."""
    outcomes = tmem.put_many(APP, pool, [(1, i, big(i)) for i in range(count)])
    return await layer.replicate(tmem, APP, pool, [((1, 0, 0), i) for i in range(count)], outcomes)


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


def test_the_copies_of_a_node_that_left_are_rebuilt_on_another() -> None:
    async def scenario() -> None:
        backend, tmem = loaded(params=TWO)
        layer, peers = await start(backend, {2: MIB, 3: 2 * MIB, 4: MIB})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        assert await put_copied(layer, tmem, pool, 10) == set()  # copies on 3
        shipments = take_shipments(tmem, True, 5, ALL)
        assert [s.replica for s in shipments] == [3] * 5
        complete_shipments(tmem, 4, shipments, await peers.links[4].put(shipments))

        await layer.set_members({n: member(n, MIB) for n in (ME, 2, 4)})  # 3 left
        assert await layer.repair() == 10
        assert layer.all_counters()["pers_pages_at_risk"] == 0
        # The 5 pages on 4 got their copy on 2; the 5 here got theirs on 2 as well.
        assert len(peers.links[2].pages) == 10
        assert [(r.node, r.replica) for r in remote_refs(tmem)] == [(4, 2)] * 5

    run(scenario)


def test_shipping_sends_no_page_to_the_peer_with_its_other_copy() -> None:
    async def scenario() -> None:
        backend, tmem = loaded(params=TWO)
        store = store_of(backend)
        layer, peers = await start(backend, {2: MIB, 3: 2 * MIB})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        per_page = SLOT_BYTES + cost(big(0))
        count = int(store.config.high_watermark * store.config.memory // per_page) + 1
        outcomes = tmem.put_many(APP, pool, [(1, i, big(i)) for i in range(count)])
        keys = [((1, 0, 0), i) for i in range(count)]
        assert await layer.replicate(tmem, APP, pool, keys, outcomes) == set()
        assert await layer.tick() > 0
        assert peers.links[3].pages.keys() == {(1, (1, 0, 0), i) for i in range(count)}
        assert all(r.node == 2 and r.replica == 3 for r in remote_refs(tmem))

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
        assert await layer.replicate(tmem, APP, pool, keys, outcomes) == set()
        assert len(peers.links[3].pages) == count  # the copies: on the peer with most room
        assert await layer.tick() > 0
        assert {r.node for r in remote_refs(tmem)} == {5}  # the next by free bytes
        assert peers.links[2].pages == peers.links[4].pages == {}

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
        assert drain_flushes(tmem) == [RemoteFlush.of(3, ref)]
        peers.links[2].get_error = None
        assert await fetched(layer, [kept]) == [pack_page(big(0))]

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
        assert layer._inflight == {}
        del peers.links[2].get  # the class's method again
        assert await asyncio.wait_for(fetched(layer, [ref]), 1.0) == [pack_page(big(1))]

    run(scenario)


def test_recovery_asks_a_peer_again_and_never_makes_an_unread_peer_forget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def scenario() -> None:
        backend, _ = loaded(params=TWO)
        peers = Peers()
        layer = RemoteLayer(
            backend,
            lambda: ME,
            "e1",
            dataclasses.replace(CONFIG, recover_timeout=0.2),
            link_factory=peers.factory,
        )
        await layer.set_members({ME: member(ME, 0), 2: member(2, MIB)})
        asked: list[str] = []

        async def unreachable(keep: str, timeout: float) -> object:
            asked.append(keep)
            raise Unavailable("node 2 is unreachable")

        forgotten: list[int] = []

        async def forget() -> bool:
            forgotten.append(2)
            return False

        monkeypatch.setattr(peers.links[2], "recover", unreachable)
        monkeypatch.setattr(peers.links[2], "forget", forget)
        assert await layer.recover() == 0
        assert len(asked) > 1  # asked again until the deadline
        assert forgotten == []  # it may hold this node's only copies: never told to forget
        assert layer.recovered

    run(scenario)
