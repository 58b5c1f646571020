"""The fixtures of the remote layer's unit tests (tests/unit/remote/): a real `Backend` with fake
peer links, no network, no sleeps.

A `FakePeer` implements `ramster.remote.peer.Peer`, keeps what it is sent as a holder would (a
page flush removes only the version it names, version 0 any), logs every call in one list shared
by all peers (so the order of calls across peers is visible), and can be told to fail, refuse,
hold a get or the answer to a put until released, or act while a put or flush is on the wire;
closing it fails the puts whose answers it holds, as closing a channel does.
Every test runs its own event loop with `asyncio.run` (`run`). Budgets and batch counts are
computed from the store's own constants and the core's (a shipped page still costs its handle,
`REMOTE_PAGE_BYTES`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import pytest

from nodemanager.model import MemberInfo
from ramster.backend import Backend
from ramster.errors import RamsterError, Unavailable
from ramster.holder.epochs import HeldKey
from ramster.page import PackedPage, compress_page
from ramster.params import ModuleParams
from ramster.remote import homecoming, remotify, replication
from ramster.remote import peers as peers_module
from ramster.remote.handles import REMOTE_PAGE_BYTES, RemoteFlush, RemoteRef, Shipment, Unanswered
from ramster.remote.layer import RemoteLayer
from ramster.remote.peer import FoundPage
from ramster.remote.policy import RemotifyConfig
from ramster.remote.shipping import complete_shipments, take_shipments
from ramster.tmem import Hit, Oid, PoolSpec, Stored, Tmem
from ramster.tmem.pool import OBJECT_BYTES, PoolRecord
from ramster.zcache import ZCache, ZcacheConfig
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
    """A `Peer` that holds pages like a holder would and logs every call."""

    def __init__(
        self, number: int, address: str, me: int, epoch: str, timeout: float, log: Log
    ) -> None:
        self.number = number
        self.address = address
        self.origin = (me, epoch, timeout)
        self.holder_epoch = ""
        self.log = log
        self.pages: dict[tuple[int, Oid, int], FoundPage] = {}
        self.corrupt_pages = 0
        self.put_error: RamsterError | None = None
        self.get_error: RamsterError | None = None
        self.flush_error: RamsterError | None = None
        self.forget_error: RamsterError | None = None
        self.forgets = 0
        """Calls of `forget`: the introductions of this origin to the peer."""
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
        self._held: set[asyncio.Event] = set()  # the gates puts in flight wait for
        self.closed = False

    async def put(
        self, shipments: Sequence[Shipment], owners: Sequence[PoolRecord] = ()
    ) -> list[bool]:
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
        self._held.add(gate)
        try:
            await gate.wait()
        finally:
            self.puts_out -= 1
            self._held.discard(gate)
        if self.closed:  # as a gRPC channel closed under its calls
            raise Unavailable("Peer/PutPages: the channel was closed during the call")
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
                and (f.version in (0, version) or (f.index is None and version < f.version))
            ]
            for key in doomed:
                del self.pages[key]
            found += bool(doomed)
        return found

    async def recover(
        self, keep: Sequence[str], timeout: float
    ) -> tuple[list[str], list[PoolRecord], list[HeldKey]]:
        return [], [], []  # it holds nothing of an earlier epoch of ME

    async def forget(self) -> bool:
        self.forgets += 1
        if self.forget_error is not None:
            raise self.forget_error
        return False

    async def close(self) -> None:
        self.closed = True
        for gate in self._held:
            gate.set()


class FakePeers:
    """The link factory: every link it made, by node number, and their shared call log."""

    def __init__(self) -> None:
        self.log: Log = []
        self.links: dict[int, FakePeer] = {}
        self.made: list[FakePeer] = []

    def factory(self, number: int, address: str, me: int, epoch: str, timeout: float) -> FakePeer:
        link = FakePeer(number, address, me, epoch, timeout, self.log)
        self.links[number] = link
        self.made.append(link)
        return link

    def calls(self, method: str) -> list[tuple[int, str, object]]:
        return [call for call in self.log if call[1] == method]


class Clock:
    """Stands in for the `time` module inside the layer's parts: failure backoff (and the busy
    time of shipping) without sleeping."""

    def __init__(self) -> None:
        self.now = 100.0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> Clock:
        """Be the clock of every part of the layer that reads one; returns itself."""
        for module in (peers_module, remotify, replication, homecoming):
            monkeypatch.setattr(module, "time", self)
        return self

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
) -> tuple[RemoteLayer, FakePeers]:
    """A layer for node ME (not started: tests drive `tick` themselves) and its fake peers."""
    peers = FakePeers()
    layer = RemoteLayer(backend, lambda: ME, "e1", config, link_factory=peers.factory)
    view = {ME: member(ME, 0)} | {number: member(number, f) for number, f in free.items()}
    await layer.set_members(view)
    await layer.recover(None, 60.0)  # no record of earlier epochs: as a cluster without etcd
    return layer, peers


def loaded(memory: int = 4 * MIB, params: ModuleParams | None = None) -> tuple[Backend, Tmem]:
    """A backend keeping one copy of a persistent page unless `params` say otherwise (second copies
    are tested in tests/unit/remote/test_replication.py and tests/unit/remote/test_copies.py)."""
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
    shipments = take_shipments(tmem.table, persistent, max_pages, ALL)
    for s in shipments:
        peer.pages[s.pool_uid, s.oid, s.index] = (s.page, s.version)
    assert complete_shipments(tmem.table, peer.number, shipments, [True] * len(shipments)) == len(
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


def fill_to_the_brim(tmem: Tmem, store: ZCache) -> int:
    """Fill the store with as many small ephemeral pages (object 7) as it takes; their pool."""
    pool = tmem.new_pool(APP, PoolSpec())
    pages = (store.config.memory - OBJECT_BYTES) // (SLOT_BYTES + cost(small(0)))
    for index in range(pages):
        put(tmem, pool, 7, index, small(index))
    return pool


TWO = ModuleParams()  # the default: two copies of every persistent page


async def put_copied(layer: RemoteLayer, tmem: Tmem, pool: int, count: int) -> set[tuple[Oid, int]]:
    """Put `count` pages of object 1 and have the layer copy them; the keys refused."""
    outcomes = tmem.put_many(APP, pool, [(1, i, big(i)) for i in range(count)])
    keys = [((1, 0, 0), i) for i in range(count)]
    shipments = layer.copies_of_puts(tmem, APP, pool, keys, outcomes)
    return await layer.copy(tmem, shipments, take_back=True)
