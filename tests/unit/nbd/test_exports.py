"""Exports over a real `Backend` and `TieredTmem` (a node alone): blocks as pages of one
persistent pool, reads that free nothing, read-modify-write, TRIM and WRITE_ZEROES, the spill
for pages the store refuses, and ENOSPC without one (`ramster.nbd.exports`, `.volume`)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from ramster.backend import Backend
from ramster.errors import InvalidArgument, NotFound
from ramster.nbd.exports import NodeExports, export_client
from ramster.nbd.protocol import Errno, RequestRefused
from ramster.nbd.spill import Spill
from ramster.nbd.volume import OBJECT_PAGES, Volume, key_of
from ramster.page import Codec
from ramster.state import ExportStatus
from ramster.tiered import TieredTmem
from ramster.tmem import Hit
from ramster.tmem.keys import owner_scope
from ramster.zcache import ZcacheConfig
from tests.support.cluster import record_page
from tests.support.dictionaries import FakeBook, recording_node, until

OWNER = "client:alice"
SIZE = 1 << 20
TEXT = b"RAMster pages " * 1171  # 16394 bytes: four pages and a bit, compressible


def exports(spill: Spill | None = None, memory: int = 8 << 20) -> NodeExports:
    backend = Backend(ZcacheConfig(memory=memory))
    return NodeExports(backend, TieredTmem(backend), spill)


def volume(node: NodeExports, name: str = "disk") -> Volume:
    found = node.export(name)
    assert found is not None
    return found


def run(coroutine: object) -> object:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


def test_an_export_is_a_persistent_pool_of_a_client_no_grpc_caller_can_name() -> None:
    node = exports()
    assert node.create("disk", SIZE, OWNER) == ExportStatus("disk", OWNER, SIZE, 0, 0)
    assert export_client(OWNER, "disk") == "nbd-export:client:alice/disk"
    assert owner_scope(export_client(OWNER, "disk")) == "nbd-export:client:alice"


def test_writes_read_back_and_reads_free_nothing() -> None:
    node = exports()
    node.create("disk", SIZE, OWNER)
    disk = volume(node)

    async def scenario() -> tuple[bytes, bytes]:
        await disk.write(4096, TEXT[:8192])
        first = await disk.read(4096, 8192)
        return first, await disk.read(4096, 8192)

    assert run(scenario()) == (TEXT[:8192], TEXT[:8192])
    assert node.statuses(OWNER) == [ExportStatus("disk", OWNER, SIZE, 2, 0)]


def test_unwritten_blocks_read_as_zeros() -> None:
    node = exports()
    node.create("disk", SIZE, OWNER)
    assert run(volume(node).read(SIZE - 5000, 5000)) == bytes(5000)


def test_partial_writes_change_only_their_bytes_also_concurrently() -> None:
    node = exports()
    node.create("disk", SIZE, OWNER)
    disk = volume(node)

    async def scenario() -> bytes:
        await disk.write(0, TEXT[:4096])
        await asyncio.gather(*(disk.write(n * 512 + 100, b"%d" % n * 10) for n in range(8)))
        return await disk.read(0, 4096)

    expected = bytearray(TEXT[:4096])
    for n in range(8):
        expected[n * 512 + 100 : n * 512 + 110] = b"%d" % n * 10
    assert run(scenario()) == bytes(expected)


def test_an_unaligned_write_across_pages_lands_byte_exact() -> None:
    node = exports()
    node.create("disk", SIZE, OWNER)
    disk = volume(node)

    async def scenario() -> bytes:
        await disk.write(1000, TEXT)
        return await disk.read(0, 20480)

    assert run(scenario()) == bytes(1000) + TEXT + bytes(20480 - 1000 - len(TEXT))


def test_trim_flushes_the_whole_pages_inside_its_range_only() -> None:
    node = exports()
    node.create("disk", SIZE, OWNER)
    disk = volume(node)

    async def scenario() -> bytes:
        await disk.write(0, TEXT[:4096] * 4)
        await disk.trim(2048, 8192)  # page 1 inside; pages 0 and 2 only in part
        return await disk.read(0, 16384)

    assert run(scenario()) == TEXT[:4096] + bytes(4096) + TEXT[:4096] * 2
    assert node.statuses(OWNER)[0].pages == 3


def test_trim_of_the_whole_export_flushes_every_page() -> None:
    node = exports()
    node.create("disk", SIZE, OWNER)
    disk = volume(node)

    async def scenario() -> None:
        await disk.write(0, TEXT[:4096] * 16)
        await disk.trim(0, SIZE)

    run(scenario())
    assert node.statuses(OWNER)[0].pages == 0


THREE_OBJECTS = 3 * OBJECT_PAGES * 4096


def block(n: int) -> bytes:
    """A page of its own for block `n`."""
    return (b"block %06d of three objects; " % n * 160)[:4096]


def three_objects() -> tuple[NodeExports, Backend, Volume]:
    """An export of three objects' blocks, each block written with its own page."""
    backend = Backend(ZcacheConfig(memory=64 << 20))
    node = NodeExports(backend, TieredTmem(backend), None)
    node.create("disk", THREE_OBJECTS, OWNER)
    disk = volume(node)
    blocks = b"".join(block(n) for n in range(3 * OBJECT_PAGES))
    for start in range(0, len(blocks), 128 * 4096):
        run(disk.write(start, blocks[start : start + 128 * 4096]))
    assert node.statuses(OWNER)[0].pages == 3 * OBJECT_PAGES
    return node, backend, disk


def test_a_trim_across_objects_flushes_its_whole_pages_and_no_other() -> None:
    node, backend, disk = three_objects()
    first, end = OBJECT_PAGES - 212, 2 * OBJECT_PAGES + 76  # the middle object and two edges

    run(disk.trim(first * 4096, (end - first) * 4096))

    expected = [bytes(4096) if first <= n < end else block(n) for n in range(3 * OBJECT_PAGES)]
    assert run(disk.read(0, THREE_OBJECTS)) == b"".join(expected)
    assert node.statuses(OWNER)[0].pages == 3 * OBJECT_PAGES - (end - first)
    assert backend.require().counters()["obj_count"] == 2


def test_a_trim_of_the_whole_export_flushes_every_object() -> None:
    node, backend, disk = three_objects()

    run(disk.trim(0, THREE_OBJECTS))

    assert run(disk.read(0, THREE_OBJECTS)) == bytes(THREE_OBJECTS)
    assert node.statuses(OWNER)[0].pages == 0
    assert backend.require().counters()["obj_count"] == 0


@pytest.mark.parametrize(("no_hole", "pages"), [(True, 3), (False, 1)])
def test_write_zeroes_reads_back_zeros_with_or_without_holes(no_hole: bool, pages: int) -> None:
    node = exports()
    node.create("disk", SIZE, OWNER)
    disk = volume(node)

    async def scenario() -> bytes:
        await disk.write(0, TEXT[:4096] * 3)
        await disk.write_zeroes(2048, 10240, no_hole)
        return await disk.read(0, 12288)

    assert run(scenario()) == TEXT[:2048] + bytes(10240)
    assert node.statuses(OWNER)[0].pages == pages


def test_pages_the_store_refuses_go_to_the_spill_and_read_back(tmp_path: Path) -> None:
    spill = Spill(str(tmp_path / "spill"), 64 * 4096)
    node = exports(spill)
    node.create("disk", SIZE, OWNER)
    disk = volume(node)
    random = os.urandom(8192)  # lz4 cannot compress it: the store refuses it

    async def scenario() -> bytes:
        await disk.write(0, random + TEXT[:4096])
        return await disk.read(0, 12288)

    assert run(scenario()) == random + TEXT[:4096]
    assert node.statuses(OWNER) == [ExportStatus("disk", OWNER, SIZE, 1, 2)]
    assert node.counters() == {
        "nbd_exports": 1,
        "nbd_store_refused": 2,
        "nbd_copies_refused": 0,
        "nbd_spilled_pages": 2,
        "nbd_spill_pages_max": 64,
        "nbd_spill_stores": 2,
        "nbd_spill_loads": 2,
        "nbd_spill_full": 0,
    }


def test_a_spilled_page_is_freed_by_trim_and_by_a_write_the_store_takes(tmp_path: Path) -> None:
    spill = Spill(str(tmp_path / "spill"), 64 * 4096)
    node = exports(spill)
    node.create("disk", SIZE, OWNER)
    disk = volume(node)

    async def scenario() -> bytes:
        await disk.write(0, os.urandom(8192))
        await disk.trim(0, 4096)
        await disk.write(4096, TEXT[:4096])
        return await disk.read(0, 8192)

    assert run(scenario()) == bytes(4096) + TEXT[:4096]
    assert spill.pages == 0


def test_a_full_spill_fails_the_write_enospc_saying_why(tmp_path: Path) -> None:
    spill = Spill(str(tmp_path / "spill"), 4096)
    node = exports(spill)
    node.create("disk", SIZE, OWNER)
    with pytest.raises(RequestRefused) as refused:
        run(volume(node).write(0, os.urandom(8192)))
    assert refused.value.errno == Errno.ENOSPC
    assert refused.value.message == (
        f"the store refused 2 pages (page 0: compress_poor) and the spill {spill.path} is full "
        "(1 pages)"
    )


def test_without_a_spill_a_refused_page_fails_the_write_enospc() -> None:
    node = exports()
    node.create("disk", SIZE, OWNER)
    with pytest.raises(RequestRefused) as refused:
        run(volume(node).write(0, os.urandom(4096)))
    assert (refused.value.errno, refused.value.message) == (
        Errno.ENOSPC,
        "the store refused 1 pages (page 0: compress_poor) and the node has no spill (--nbd-spill)",
    )


@pytest.mark.parametrize(
    ("name", "size", "message"),
    [
        (
            "",
            SIZE,
            "name '' is invalid: expected 1-63 letters, digits, '.', '_' or '-', starting alnum",
        ),
        (
            "disk",
            4095,
            "size 4095 is invalid: expected a multiple of 4096 bytes in 4096..17592186044416",
        ),
        ("disk", 0, "size 0 is invalid: expected a multiple of 4096 bytes in 4096..17592186044416"),
        (
            "disk",
            (1 << 44) + 4096,
            f"size {(1 << 44) + 4096} is invalid: expected a multiple of 4096 bytes in "
            "4096..17592186044416",
        ),
    ],
)
def test_bad_exports_are_refused_naming_the_field(name: str, size: int, message: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        exports().create(name, size, OWNER)
    assert refused.value.message == message


def test_a_name_is_one_export_whoever_owns_it() -> None:
    node = exports()
    node.create("disk", SIZE, OWNER)
    with pytest.raises(
        InvalidArgument, match=r"^export 'disk' exists on this node: choose another name$"
    ):
        node.create("disk", SIZE, "client:bob")


def test_only_the_owner_lists_and_deletes_its_export() -> None:
    node = exports()
    node.create("disk", SIZE, OWNER)
    run(volume(node).write(0, TEXT[:4096] * 2))
    assert node.statuses("client:bob") == []
    with pytest.raises(NotFound, match=r"^no export 'disk' of client:bob on this node$"):
        node.delete("disk", "client:bob")
    assert node.delete("disk", OWNER) == 2
    assert node.statuses(OWNER) == []
    assert node.find("disk") is None


def test_a_backend_loaded_anew_gets_the_export_a_new_pool_and_spilled_pages_stay(
    tmp_path: Path,
) -> None:
    spill = Spill(str(tmp_path / "spill"), 64 * 4096)
    backend = Backend(ZcacheConfig(memory=8 << 20))
    node = NodeExports(backend, TieredTmem(backend), spill)
    node.create("disk", SIZE, OWNER)
    disk = volume(node)
    random = os.urandom(4096)
    run(disk.write(0, random))  # refused by the store: spilled
    assert backend.set_param("zcache", "off")
    assert backend.set_param("zcache", "on")

    async def scenario() -> bytes:
        await disk.write(4096, TEXT[:4096])
        return await disk.read(0, 8192)

    assert run(scenario()) == random + TEXT[:4096]
    assert node.statuses(OWNER) == [ExportStatus("disk", OWNER, SIZE, 1, 1)]


def test_a_deleted_export_fails_every_operation_of_a_client_still_connected() -> None:
    node = exports()
    node.create("disk", SIZE, OWNER)
    disk = volume(node)
    node.delete("disk", OWNER)
    node.create("disk", SIZE, OWNER)
    run(volume(node).write(0, TEXT[:4096]))
    with pytest.raises(RequestRefused) as refused:
        run(disk.read(0, 4096))
    assert (refused.value.errno, refused.value.message) == (
        Errno.EIO,
        "export nbd-export:client:alice/disk was deleted",
    )


def test_a_zstd_export_reads_back_the_pages_packed_with_its_pool_s_trained_dictionary() -> None:
    # A clustered node keeps persistent pools' dictionaries (they are recorded in etcd): the
    # export's pages are packed with one once it is trained, and a read unpacks them with it
    # (before, every such read failed: the volume unpacked with no dictionary).
    book = FakeBook()
    book.gate.set()
    backend, tiered = recording_node(book)
    node = NodeExports(backend, tiered)
    node.create("disk", 1024 * 4096, OWNER, Codec("zstd", 1))
    disk = volume(node)
    blocks = b"".join(record_page(n) for n in range(200))

    async def scenario() -> tuple[bytes, bytes, list[int]]:
        await disk.write(0, blocks[: 100 * 4096])  # the samples the dictionary trains on
        await until(lambda: book.saved != [], "the export's dictionary trained and recorded")
        await disk.write(100 * 4096, blocks[100 * 4096 :])  # packed with it
        place = disk.place
        hits = backend.require().get_many_packed(
            place.client, place.pool_id, [key_of(n) for n in range(100, 200)]
        )
        used = sorted({hit.page.dictionary for hit in hits if isinstance(hit, Hit)})
        return await disk.read(0, len(blocks)), await disk.read(150 * 4096 + 100, 5000), used

    read, part, used = run(scenario())  # type: ignore[misc]
    assert used == [book.saved[0][1]]
    assert read == blocks
    assert part == blocks[150 * 4096 + 100 : 150 * 4096 + 5100]
    assert tiered.counters["zstd_pages_lost"] == 0
