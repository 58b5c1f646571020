"""The write-back of an export with two copies (`ramster.nbd.volume`, `.write_back`): a write
is acknowledged once its pages are held here, their second copies follow, and a FLUSH returns
only once every copy of the writes before it is made; a rewrite or a TRIM while a copy is on
its way leaves the peer the new state; a page no peer took goes to the spill, or fails the next
FLUSH; the copies of writes queued together go in one call. Over a real `Backend` and
`RemoteLayer` with a fake peer whose answers the test holds (tests/support/remote.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ramster.backend import Backend
from ramster.errors import InternalError
from ramster.nbd import volume as volume_module
from ramster.nbd import write_back
from ramster.nbd.exports import NodeExports
from ramster.nbd.protocol import Errno, RequestRefused
from ramster.nbd.spill import Spill
from ramster.nbd.volume import OBJECT_PAGES, Volume
from ramster.page import PackedPage, pack_page, unpack_page
from ramster.params import ModuleParams
from ramster.remote.layer import RemoteLayer
from ramster.tiered import TieredTmem
from ramster.tmem import PoolSpec
from ramster.zcache import ZcacheConfig
from tests.support.remote import MIB, TWO, FakePeer, settle, ship, start

OWNER = "client:alice"
PEER = 2
SIZE = 4 << 20
"""Two objects of 512 blocks (`ramster.nbd.volume.OBJECT_PAGES`)."""
TEXT = b"RAMster pages " * 1171  # four pages and a bit, compressible


def page(n: int) -> bytes:
    return TEXT[n * 4096 : (n + 1) * 4096]


async def two_copies(
    spill: Spill | None = None,
) -> tuple[Volume, NodeExports, RemoteLayer, FakePeer]:
    """An export "disk" of a node keeping two copies, its exports, remote layer and one peer."""
    backend = Backend(ZcacheConfig(memory=8 * MIB), params=TWO)
    layer, peers = await start(backend, {PEER: 64 * MIB})
    node = NodeExports(backend, TieredTmem(backend, layer), spill)
    node.create("disk", SIZE, OWNER)
    disk = node.export("disk")
    assert isinstance(disk, Volume)
    return disk, node, layer, peers.links[PEER]


def held_by_peer(peer: FakePeer) -> dict[int, bytes]:
    """The pages the peer holds, by page index, unpacked."""
    return {index: unpack_page(found[0]) for (_, oid, index), found in peer.pages.items()}


def test_a_write_is_acknowledged_before_its_copy_and_a_flush_waits_for_every_copy() -> None:
    async def scenario() -> None:
        disk, _, layer, peer = await two_copies()
        peer.put_gate.clear()  # the peer stores each copy, its answer waits
        for n in range(3):
            await disk.write(n * 4096, page(n))  # acknowledged with no answer from the peer
        flushing = asyncio.create_task(disk.flush())
        await settle()
        assert not flushing.done()
        assert layer.replication.pages_at_risk() == 3
        peer.put_gate.set()
        await flushing
        assert layer.replication.pages_at_risk() == 0
        assert held_by_peer(peer) == {0: page(0), 1: page(1), 2: page(2)}
        assert await disk.read(0, 3 * 4096) == TEXT[: 3 * 4096]

    asyncio.run(scenario())


def test_a_rewrite_while_the_first_copy_is_on_its_way_leaves_the_peer_the_new_page() -> None:
    async def scenario() -> None:
        disk, _, layer, peer = await two_copies()
        first, second = asyncio.Event(), asyncio.Event()
        peer.put_gates = [first, second]
        await disk.write(0, page(0))
        await disk.write(0, page(1))  # the same block again, its first copy still unanswered
        assert await disk.read(0, 4096) == page(1)
        second.set()  # the newer copy is answered first, the older one last
        await settle()
        first.set()
        await disk.flush()
        await layer.replication.repair()  # sends the flushes queued (the older copy's)
        assert held_by_peer(peer) == {0: page(1)}
        assert layer.replication.pages_at_risk() == 0

    asyncio.run(scenario())


def test_a_write_past_the_write_back_bound_waits_for_earlier_copies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(write_back, "WRITE_BACK_BYTES", 2 * 4096)

    async def scenario() -> None:
        disk, node, _, peer = await two_copies()
        peer.put_gate.clear()
        await disk.write(0, TEXT[: 2 * 4096])  # the whole bound
        third = asyncio.create_task(disk.write(2 * 4096, page(2)))
        await settle()
        assert not third.done()
        assert node.statuses(OWNER)[0].pages == 2  # not even put yet
        peer.put_gate.set()
        await third
        await disk.flush()
        assert held_by_peer(peer) == {0: page(0), 1: page(1), 2: page(2)}

    asyncio.run(scenario())


@pytest.mark.parametrize("block", [0, 511], ids=["one object", "two objects"])
def test_pages_no_peer_took_a_copy_of_go_to_the_spill(tmp_path: Path, block: int) -> None:
    async def scenario() -> None:
        disk, node, layer, peer = await two_copies(Spill(str(tmp_path / "spill"), 64 * 4096))
        peer.refuse = True
        await disk.write(block * 4096, TEXT[: 2 * 4096])
        await disk.flush()
        assert node.statuses(OWNER)[0].pages == 0
        assert node.counters()["nbd_copies_refused"] == 2
        assert node.counters()["nbd_spilled_pages"] == 2
        assert layer.replication.pages_at_risk() == 0
        assert await disk.read(0, SIZE) == (
            bytes(block * 4096) + TEXT[: 2 * 4096] + bytes(SIZE - (block + 2) * 4096)
        )

    asyncio.run(scenario())


def test_without_a_spill_pages_left_with_one_copy_fail_the_next_flush_once() -> None:
    async def scenario() -> None:
        disk, node, layer, peer = await two_copies()
        peer.refuse = True
        await disk.write(0, TEXT[: 2 * 4096])
        with pytest.raises(RequestRefused) as refused:
            await disk.flush()
        assert refused.value.errno == Errno.EIO
        assert refused.value.message == (
            "2 pages written have one copy: no peer took their other copy and the node has no "
            "spill (the repair loop copies them once a peer can take them)"
        )
        await disk.flush()  # reported once, as fsync reports a lost write-back
        assert layer.replication.pages_at_risk() == 2
        assert node.counters()["nbd_copies_refused"] == 2
        assert await disk.read(0, 2 * 4096) == TEXT[: 2 * 4096]

    asyncio.run(scenario())


def test_a_trim_while_a_copy_is_on_its_way_leaves_the_peer_nothing() -> None:
    async def scenario() -> None:
        disk, _, layer, peer = await two_copies()
        peer.put_gate.clear()
        await disk.write(0, page(0))
        await disk.trim(0, 4096)
        peer.put_gate.set()
        await disk.flush()
        await layer.replication.repair()
        assert held_by_peer(peer) == {}
        assert await disk.read(0, 4096) == bytes(4096)

    asyncio.run(scenario())


def test_a_block_written_after_a_trim_of_its_object_keeps_its_copy_whenever_the_flush_goes() -> (
    None
):
    """A TRIM of a whole object queues one flush of the object for the peer; its first block,
    written again, is copied before that flush goes out: the flush leaves the new copy."""

    async def scenario() -> None:
        disk, _, layer, peer = await two_copies()
        await disk.write(0, page(0) * OBJECT_PAGES)
        await disk.flush()
        assert len(held_by_peer(peer)) == OBJECT_PAGES
        await disk.trim(0, OBJECT_PAGES * 4096)  # the object's flush is queued, not sent
        await disk.write(0, page(1))
        await disk.flush()  # its copy is made
        await layer.replication.repair()  # sends the flushes queued
        assert held_by_peer(peer) == {0: page(1)}
        assert await disk.read(0, 2 * 4096) == page(1) + bytes(4096)

    asyncio.run(scenario())


def test_a_read_is_served_between_the_batches_of_a_long_write() -> None:
    async def scenario() -> None:
        disk, node, _, _ = await two_copies()
        await disk.write(0, page(0))
        pages = 3 * volume_module.STORE_BATCH
        writing = asyncio.create_task(disk.write(4096, page(1) * pages))
        reading = asyncio.create_task(disk.read(0, 4096))
        assert await reading == page(0)
        assert not writing.done()
        # Some batches of the write were put meanwhile (as many as the read took turns), not all.
        assert node.statuses(OWNER)[0].pages < 1 + pages
        await writing
        assert node.statuses(OWNER)[0].pages == 1 + pages

    asyncio.run(scenario())


def test_the_copies_of_writes_queued_behind_a_call_go_together_in_the_next_one() -> None:
    async def scenario() -> None:
        disk, _, _, peer = await two_copies()
        first = asyncio.Event()
        peer.put_gates = [first]
        await disk.write(0, page(0))
        await settle()  # its copy is sent, the answer held
        await disk.write(4096, page(1))
        await disk.write(8192, page(2))
        first.set()
        await disk.flush()
        puts = [keys for _, method, keys in peer.log if method == "put"]
        assert puts == [[((0, 0, 0), 0)], [((0, 0, 0), 1), ((0, 0, 0), 2)]]

    asyncio.run(scenario())


def test_blocks_remotified_to_a_peer_read_back_from_it_beside_blocks_here() -> None:
    async def scenario() -> None:
        backend = Backend(ZcacheConfig(memory=8 * MIB), params=ModuleParams(persistent_copies=1))
        layer, peers = await start(backend, {PEER: 64 * MIB})
        node = NodeExports(backend, TieredTmem(backend, layer))
        node.create("disk", SIZE, OWNER)
        disk = node.export("disk")
        assert isinstance(disk, Volume)
        peer = peers.links[PEER]
        await disk.write(0, TEXT[: 3 * 4096])
        shipped = ship(backend.require(), peer, persistent=True, max_pages=2)
        assert sorted(s.index for s in shipped) == [0, 1]
        await disk.write(3 * 4096, page(3))
        assert await disk.read(100, 4 * 4096 - 200) == TEXT[100 : 4 * 4096 - 100]
        assert peers.calls("get") == [(PEER, "get", [((0, 0, 0), 0), ((0, 0, 0), 1)])]

    asyncio.run(scenario())


def test_a_page_no_peer_took_that_cannot_be_unpacked_stays_and_the_others_still_spill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        disk, node, layer, peer = await two_copies(Spill(str(tmp_path / "spill"), 64 * 4096))
        unpacked = TieredTmem.unpacked

        def losing_block_1(
            tiered: TieredTmem, pages: list[PackedPage], spec: PoolSpec, uid: int
        ) -> list[bytes | None]:
            if pages == [pack_page(page(1))]:  # as if its zstd dictionary were gone
                raise InternalError("a page of the pool is lost: zstd page names dictionary 9")
            return unpacked(tiered, pages, spec, uid)

        monkeypatch.setattr(TieredTmem, "unpacked", losing_block_1)
        peer.refuse = True
        await disk.write(0, TEXT[: 3 * 4096])
        with pytest.raises(RequestRefused) as refused:
            await disk.flush()
        assert refused.value.message.startswith("1 pages written have one copy")
        assert node.counters()["nbd_copies_refused"] == 3
        assert node.counters()["nbd_spilled_pages"] == 2
        assert node.statuses(OWNER)[0].pages == 1  # block 1, its one copy in the store
        assert layer.replication.pages_at_risk() == 1

    asyncio.run(scenario())
