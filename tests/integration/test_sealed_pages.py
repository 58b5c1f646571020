"""Pages leave their origin sealed (issue 12): a holder keeps what it can neither read nor swap.

Real nodes with certificates and page keys made by ``ramster certs``, a real etcd. A holder's
copies are read straight from its Peer service, as the origin's certificate would; the swap is
done the same way, as a holder (or anyone who could write to it) would hand back another page.
"""

from __future__ import annotations

import datetime
import zlib
from pathlib import Path

import pytest

from ramster.api.v1 import peer_pb2, tmem_pb2
from ramster.page import pack_page
from ramster.trust.files import init_ca, issue
from ramster.trust.identity import Identity, Role
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
from tests.support.wire import RawNode


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
