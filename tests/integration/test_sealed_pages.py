"""Pages leave their origin sealed (issue 12): a holder keeps what it can neither read nor swap.

Real nodes with certificates and page keys made by ``ramster certs``, a real etcd. A holder's
copies are read straight from its Peer service, as the origin's certificate would; the swap is
done the same way, as a holder (or anyone who could write to it) would hand back another page.
"""

from __future__ import annotations

import asyncio
import datetime
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from ramster.api.v1 import peer_pb2, tmem_pb2
from ramster.page import PackedPage, pack_page
from ramster.remote.handles import RemoteRef, Shipment
from ramster.rpc.peer_link import PeerLink
from ramster.tmem.keys import PoolSpec
from ramster.tmem.pool import PoolRecord
from ramster.trust.files import init_ca, issue
from ramster.trust.identity import Identity, Role
from ramster.trust.seal import OriginSeal
from ramster.wire.peer_messages import pool_record_message
from ramster.wire.tls import TLS
from tests.support.cluster import (
    Cluster,
    done_shipping,
    key,
    pages_of,
    read_back,
    store_all,
    text_page,
)
from tests.support.etcd import EtcdProcess
from tests.support.nodes import NodeFactory
from tests.support.peer_relay import PeerRelay
from tests.support.wire import RawNode

SEALED, LZ4 = tmem_pb2.PAGE_ENCODING_SEALED, tmem_pb2.PAGE_ENCODING_LZ4
STORED = tmem_pb2.PUT_STATUS_STORED


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    """A CA with nodes A, B (each with its page key) and a client app."""
    folder, now = tmp_path / "pki", datetime.datetime.now(datetime.UTC)
    init_ca(folder, now=now)
    for role, name in ((Role.NODE, "A"), (Role.NODE, "B"), (Role.CLIENT, "app")):
        issue(folder, Identity(role, name), now=now)
    return folder


def tls(folder: Path, name: str) -> TLS:
    return TLS(folder / "ca.crt", folder / f"{name}.crt", folder / f"{name}.key")


def held(wire: RawNode, origin: peer_pb2.Origin, numbers: list[int]) -> peer_pb2.PeerGetResponse:
    """What the holder at `wire` answers for the origin's pages `numbers` of pool uid 1."""
    request = peer_pb2.PeerGetRequest(
        origin=origin,
        keys=[
            peer_pb2.RemoteKey(pool=1, oid=tmem_pb2.Oid(word0=key(n)[0]), index=key(n)[1])
            for n in numbers
        ],
    )
    return wire.call("/ramster.api.v1.Peer/GetPages", request).parsed(peer_pb2.PeerGetResponse)


def test_a_holder_keeps_sealed_pages_it_cannot_read_nor_swap(
    node_factory: NodeFactory, etcd: EtcdProcess, etcd_cluster: str, pki: Path
) -> None:
    cluster = Cluster(node_factory, etcd.url, etcd_cluster)
    try:
        app = tls(pki, "app")
        cluster.start("A", "4MiB", tls=(tls(pki, "A"), app))
        cluster.start("B", "16MiB", tls=(tls(pki, "B"), app))
        a = cluster.clients["A"]
        pool = a.new_pool(persistent=True)
        numbers = pages_of(range(48))  # about 6 MiB packed: A ships its oldest pages to B
        store_all(a, pool, numbers)
        assert done_shipping(lambda: cluster.stats("A"))["remote_pers_pages"] > 0
        origin = peer_pb2.Origin(
            node_number=cluster.stats("A")["node_number"], epoch=cluster.nodes["A"].epoch
        )
        with RawNode(cluster.nodes["B"].address, tls=tls(pki, "A")) as wire:
            copies: dict[int, bytes] = {}
            for start in range(0, len(numbers), 1024):  # the batch limit
                batch = numbers[start : start + 1024]
                answer = held(wire, origin, batch)
                found = zip(batch, answer.found, answer.data, strict=True)
                copies.update((n, data) for n, present, data in found if present)
            remote = list(copies)
            assert len(remote) > 2, len(remote)
            # What B keeps is no page of A: neither the lz4 block A stored nor a byte of text.
            for n, data in copies.items():
                assert data != pack_page(text_page(n)).payload
                assert f"page {n:08d}".encode() not in data
            # B (or whoever can write to it) puts page x's sealed bytes in place of page y's.
            x, y = remote[0], remote[1]
            [version_y] = held(wire, origin, [y]).versions
            swap = peer_pb2.RemotePage(
                pool=1,
                persistent=True,
                oid=tmem_pb2.Oid(word0=key(y)[0]),
                index=key(y)[1],
                version=version_y,
                data=copies[x],
                encoding=tmem_pb2.PAGE_ENCODING_SEALED,
                page_size=4096,
            )
            swap.checksum = zlib.crc32(swap.data)
            put = peer_pb2.PeerPutRequest(origin=origin, pages=[swap])
            stored = wire.call("/ramster.api.v1.Peer/PutPages", put)
            assert list(stored.parsed(peer_pb2.PeerPutResponse).results) == [
                tmem_pb2.PUT_STATUS_STORED
            ]
        # A never hands out x's page as y's: y is a lost copy (a miss), every other page exact.
        assert read_back(a, pool, numbers, free=False) == [y]
        assert a.get_many(pool, [key(y)], free=False) == [None]
        assert cluster.stats("A")["remote_pages_corrupt"] >= 1
    finally:
        cluster.close()


# -- a sealing origin over TLS sends no checksums: the tag checks a page, TLS the way there ---


def sealed_shipments(now: int) -> list[Shipment]:
    """Pages 0..2 of origin pool 7, object 9: two distinct lz4 pages and a same-filled one."""
    packed = [pack_page(text_page(0)), pack_page(text_page(1)), pack_page(b"\x00" * 4096)]
    return [
        Shipment(7, (9, 0, 0), i, now + i, obj_id=1, slot=i, persistent=True, page=p)
        for i, p in enumerate(packed)
    ]


def sealed_refs(items: list[Shipment]) -> list[RemoteRef]:
    return [
        RemoteRef(7, (9, 0, 0), s.index, s.version, node=1, obj_id=1, persistent=True,
                  page_size=4096)
        for s in items
    ]  # fmt: skip


OWNER = PoolRecord(7, "client:app/swap", 0, PoolSpec(persistent=True))


@pytest.fixture
def a_and_b(
    node_factory: NodeFactory, etcd: EtcdProcess, etcd_cluster: str, pki: Path
) -> Iterator[Cluster]:
    """Nodes A and B with their certificates and page keys."""
    cluster = Cluster(node_factory, etcd.url, etcd_cluster)
    try:
        app = tls(pki, "app")
        cluster.start("A", "16MiB", tls=(tls(pki, "A"), app))
        cluster.start("B", "16MiB", tls=(tls(pki, "B"), app))
        yield cluster
    finally:
        cluster.close()


def origin_of(cluster: Cluster, name: str) -> peer_pb2.Origin:
    number = cluster.stats(name)["node_number"]
    return peer_pb2.Origin(node_number=number, epoch=cluster.nodes[name].epoch)


def a_to_b(cluster: Cluster, pki: Path, seal: OriginSeal, address: str) -> PeerLink:
    """A's sealing link over TLS to B, reached at `address` (B's, or a relay's)."""
    origin = origin_of(cluster, "A")
    return PeerLink(
        cluster.stats("B")["node_number"],
        address,
        origin.node_number,
        origin.epoch,
        10.0,
        cluster=cluster.name,
        name="A",
        tls=tls(pki, "A"),
        seal=seal,
    )


@pytest.mark.parametrize("announced", [True, False], ids=["announced", "earlier-release"])
def test_a_sealing_link_over_tls_puts_no_checksums_and_reads_its_pages_back_exact(
    a_and_b: Cluster, pki: Path, announced: bool
) -> None:
    """A's link to B (through a relay that shows what it sends, with B's certificate) puts its
    sealed pages without CRC-32s if B's Hello announced it takes them, with them if not (B
    plays a release that does not know such puts); either way they come back exact."""
    seal = OriginSeal("A", (pki / "A.pagekey").read_bytes())
    items = sealed_shipments(time.time_ns() // 1000)

    async def run() -> tuple[list[bool], list[tuple[PackedPage, int] | None], PeerRelay, int]:
        b = a_and_b.nodes["B"].address
        async with PeerRelay(b, checked_puts=not announced, tls=tls(pki, "A")) as relay:
            link = a_to_b(a_and_b, pki, seal, relay.address)
            link.holder_epoch = a_and_b.nodes["B"].epoch
            try:
                stored = await link.put(items, [OWNER])
                return stored, await link.get(sealed_refs(items)), relay, link.corrupt_pages
            finally:
                await link.close()

    stored, answers, relay, corrupt = asyncio.run(run())
    assert stored == [True] * 3
    assert answers == [(s.page, s.version) for s in items]
    assert corrupt == 0
    assert relay.calls == ["Hello", "PutPageBatch", "GetPageBatch"]
    put = peer_pb2.PeerPutBatchRequest.FromString(relay.requests[1])
    assert put.skip_checksums is announced
    assert len(put.checksums) == (0 if announced else 3)
    assert list(put.encodings) == [tmem_pb2.PAGE_ENCODING_SEALED] * 3


def lean_sealed_put(
    origin: peer_pb2.Origin,
    items: list[Shipment],
    data: list[bytes],
    encodings: list[tmem_pb2.PageEncoding],
) -> peer_pb2.PeerPutBatchRequest:
    """A put without checksums of `items` as `data` in `encodings`."""
    return peer_pb2.PeerPutBatchRequest(
        origin=origin,
        keys=tmem_pb2.KeyBatch(oid_word0=[9] * len(items), indexes=[s.index for s in items]),
        pool_uids=[7] * len(items),
        persistent=[True] * len(items),
        versions=[s.version for s in items],
        encodings=encodings,
        page_sizes=[4096] * len(items),
        data=b"".join(data),
        lengths=[len(d) for d in data],
        skip_checksums=True,
        pools=[pool_record_message(OWNER)],
    )  # fmt: skip


def test_a_holder_takes_sealed_pages_without_checksums_only_and_a_damaged_one_is_lost(
    a_and_b: Cluster, pki: Path
) -> None:
    """Without checksums a holder takes sealed pages only (a packed page is refused, naming it);
    a sealed page damaged before it reached the holder is stored as it came, and its origin
    takes it for a lost copy, never for its page."""
    origin = origin_of(a_and_b, "A")
    seal = OriginSeal("A", (pki / "A.pagekey").read_bytes())
    items = sealed_shipments(time.time_ns() // 1000)
    sealed = [seal.seal(s, s.page) for s in items]
    damaged = bytearray(sealed[1])
    damaged[40] ^= 1
    with RawNode(a_and_b.nodes["B"].address, tls=tls(pki, "A")) as wire:
        packed = lean_sealed_put(
            origin, items[:2], [sealed[0], items[1].page.payload], [SEALED, LZ4]
        )
        refused = wire.call("/ramster.api.v1.Peer/PutPageBatch", packed)
        assert refused.code == grpc.StatusCode.INVALID_ARGUMENT
        assert refused.details == (
            "pages[1].checksum is missing (skip_checksums) for a page of encoding "
            "PAGE_ENCODING_LZ4: expected PAGE_ENCODING_SEALED, the only pages that may come "
            "without one"
        )
        put = lean_sealed_put(origin, items, [sealed[0], bytes(damaged), sealed[2]], [SEALED] * 3)
        stored = wire.call("/ramster.api.v1.Peer/PutPageBatch", put)
        assert list(stored.parsed(peer_pb2.PeerPutBatchResponse).results) == [STORED] * 3

    async def read() -> tuple[list[tuple[PackedPage, int] | None], int]:
        link = a_to_b(a_and_b, pki, seal, a_and_b.nodes["B"].address)
        try:
            return await link.get(sealed_refs(items)), link.corrupt_pages
        finally:
            await link.close()

    answers, corrupt = asyncio.run(read())
    assert answers == [(items[0].page, items[0].version), None, (items[2].page, items[2].version)]
    assert corrupt == 1
