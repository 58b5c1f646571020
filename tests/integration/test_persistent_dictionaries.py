"""Dictionaries of persistent zstd pools (issue 16) on real nodes and a real etcd: a pool trains
them, records each in etcd before a page is packed with it, and its pages' second copies on a
peer come back exact after the origin is killed and restarted, pages of a retired dictionary
among them; a damaged record loses the pages packed with it (counted), never reads them
wrong; the record of a pool that did not come back is erased; a sealing node's record is
sealed."""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import json
from pathlib import Path

import pytest

from nodemanager.cli import write_param
from ramster.client import SyncClient
from ramster.errors import RamsterError
from ramster.launcher import free_port
from ramster.page import DEFAULT_ZSTD_LEVEL, ZSTD, Codec, pack_page
from ramster.trust.files import init_ca, issue
from ramster.trust.identity import Identity, Role
from ramster.wire.tls import TLS
from ramster.zcache.dictionaries import Samples, Training, train
from tests.support.cluster import Cluster, record_page
from tests.support.etcd import EtcdProcess
from tests.support.nodes import NodeFactory
from tests.support.processes import wait_for

Pages = list[tuple[int, int, bytes]]


def dictionary_keys(etcd: EtcdProcess, cluster: str, number: int) -> list[str]:
    """The leaves of node `number`'s dictionary record in etcd."""
    folder = f"/ramster/{cluster}/dictionaries/{number}/"
    listed = etcd.ctl("get", folder, "--prefix", "--keys-only").split()
    return sorted(key.removeprefix(folder) for key in listed)


def start_pair(cluster: Cluster, pki: Path | None = None) -> SyncClient:
    """Nodes A (on a port it keeps across restarts) and B, every persistent page with its second
    copy on the other; A trains dictionaries on 200 pages; its client. With `pki`, the nodes
    serve TLS and seal what leaves them under their page keys."""
    for name, value in (("dict_samples", "200"), ("dict_size", "16384"), ("dict_drift", "5")):
        asyncio.run(write_param(cluster.etcd_url, cluster.name, name, value))  # cluster-wide
    cluster.start("A", "32MiB", listen=f"127.0.0.1:{free_port()}", tls=pair(pki, "A"))
    cluster.start("B", "32MiB", tls=pair(pki, "B"))
    wait_for(lambda: sorted(cluster.published_free()) == ["A", "B"], what="A and B in the view")
    return cluster.clients["A"]


def trained_pool(cluster: Cluster, pki: Path | None = None) -> tuple[SyncClient, int, int, Pages]:
    """`start_pair`, then a persistent zstd pool of A's with 200 pages (object 1), which trained
    its first dictionary: A's client, A's node number, the pool, the pages."""
    a = start_pair(cluster, pki)
    pool = a.new_pool(persistent=True, codec="zstd")
    first: Pages = [(1, n, record_page(n)) for n in range(200)]
    put_all(a, pool, first)
    wait_for(lambda: a.stats()["zstd_dicts_trained"] == 1, what="a dictionary")
    return a, a.stats()["node_number"], pool, first


def zstd_alone(pages: Pages) -> int:
    """Bytes `pages` take packed with zstd (the pool's level) but no dictionary."""
    codec = Codec(ZSTD, DEFAULT_ZSTD_LEVEL)
    return sum(len(pack_page(page, codec).payload) for _, _, page in pages)


def put_all(client: SyncClient, pool: int, pages: Pages) -> None:
    for start in range(0, len(pages), 256):
        batch = pages[start : start + 256]
        assert client.put_many(pool, batch) == [True] * len(batch)


def pair(pki: Path | None, node: str) -> tuple[TLS, TLS] | None:
    """What node `node` serves with and what its client calls with (`pki` None: no TLS)."""
    if pki is None:
        return None
    return tls(pki, node), tls(pki, "app")


def tls(folder: Path, name: str) -> TLS:
    return TLS(folder / "ca.crt", folder / f"{name}.crt", folder / f"{name}.key")


def restart(cluster: Cluster, name: str, pki: Path | None = None) -> SyncClient:
    """Kill node `name`, wait until it left the view, start it again; a new client of it."""
    node = cluster.nodes[name]
    node.kill()
    wait_for(lambda: name not in cluster.published_free(), what=f"{name} out of the view")
    node.start()
    return SyncClient(node.address, "test-A", tls=None if pki is None else tls(pki, "app"))


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    """A CA with nodes A, B (each with its page key) and a client app."""
    folder, now = tmp_path / "pki", datetime.datetime.now(datetime.UTC)
    init_ca(folder, now=now)
    for role, name in ((Role.NODE, "A"), (Role.NODE, "B"), (Role.CLIENT, "app")):
        issue(folder, Identity(role, name), now=now)
    return folder


def test_a_persistent_pool_s_dictionaries_come_back_with_its_restarted_origin(
    node_factory: NodeFactory, etcd: EtcdProcess, etcd_cluster: str
) -> None:
    cluster = Cluster(node_factory, etcd.url, etcd_cluster, copies=2)
    try:
        a, number, pool, first = trained_pool(cluster)
        assert dictionary_keys(etcd, etcd_cluster, number) == ["1", "next"]
        before = a.stats()["zstd_zbytes"]
        second: Pages = [(2, n, record_page(1000 + n)) for n in range(200)]
        put_all(a, pool, second)
        alone = zstd_alone(second)
        assert a.stats()["zstd_zbytes"] - before < alone / 2  # packed with the dictionary
        # Other pages: the ratio drifts and a second dictionary takes over; pages of the first
        # stay stored.
        third: Pages = [(3, n, record_page(n, seed=2)) for n in range(600)]
        put_all(a, pool, third)
        wait_for(lambda: a.stats()["zstd_dicts_trained"] == 2, what="a second dictionary")
        fourth: Pages = [(4, n, record_page(5000 + n, seed=2)) for n in range(100)]
        put_all(a, pool, fourth)
        assert dictionary_keys(etcd, etcd_cluster, number) == ["1", "2", "next"]
        every = first + second + third + fourth
        assert cluster.stats("B")["foreign_pers_pages"] == len(every)
        a.close()

        again = restart(cluster, "A")
        with again:
            stats = again.stats()
            assert stats["pers_pages_recovered"] == len(every)
            assert (stats["zstd_dicts_unreadable"], stats["zstd_dicts_trained"]) == (0, 0)
            assert again.new_pool(persistent=True, codec="zstd") == pool  # claims its pool
            got = again.get_many(pool, [(o, i) for o, i, _ in every], free=False)
            assert got == [page for _, _, page in every]
            # New pages are packed with the newest dictionary it had: no training again.
            before = again.stats()["zstd_zbytes"]
            fifth: Pages = [(5, n, record_page(9000 + n, seed=2)) for n in range(100)]
            put_all(again, pool, fifth)
            alone = zstd_alone(fifth)
            assert again.stats()["zstd_zbytes"] - before < alone / 2
            assert again.get_many(pool, [(o, i) for o, i, _ in fifth], free=False) == [
                page for _, _, page in fifth
            ]
            assert again.stats()["zstd_pages_lost"] == 0
            # The pool goes: so do its dictionaries, from the node and from the record.
            again.destroy_pool(pool)
            wait_for(
                lambda: dictionary_keys(etcd, etcd_cluster, number) == ["next"],
                what="the record erased",
            )
            assert again.stats()["zstd_dicts_dropped"] == 2
    finally:
        cluster.close()


def test_a_damaged_dictionary_record_loses_its_pages_and_never_reads_them_wrong(
    node_factory: NodeFactory, etcd: EtcdProcess, etcd_cluster: str
) -> None:
    cluster = Cluster(node_factory, etcd.url, etcd_cluster, copies=2)
    try:
        a, number, pool, plain = trained_pool(cluster)
        packed: Pages = [(2, n, record_page(1000 + n)) for n in range(20)]
        put_all(a, pool, packed)
        a.close()
        key = f"/ramster/{etcd_cluster}/dictionaries/{number}/1"
        record = json.loads(etcd.ctl("get", key, "--print-value-only"))
        data = bytearray(base64.b64decode(record["data"]))
        data[len(data) // 2] ^= 1  # one bit of the dictionary flipped in etcd
        record["data"] = base64.b64encode(data).decode()
        etcd.ctl("put", key, json.dumps(record))
        # And a whole record of a pool that will not come back (its node died before it could
        # erase it, say): id 7.
        stale = train(
            Training(999, 7, Samples(record_page(n, seed=4) for n in range(200)), 16384, 1)
        )
        assert stale is not None
        digest = hashlib.sha256(b"999/7/" + stale).digest()
        stale_record = {
            "pool_uid": 999,
            "data": base64.b64encode(stale).decode(),
            "sha256": base64.b64encode(digest).decode(),
        }
        etcd.ctl("put", key.removesuffix("1") + "7", json.dumps(stale_record))

        with restart(cluster, "A") as again:
            assert again.stats()["zstd_dicts_unreadable"] == 1
            # Every peer handed its pages over and pool 999 was not among them: its
            # dictionary goes; the unreadable one stays (its id stays taken).
            wait_for(
                lambda: dictionary_keys(etcd, etcd_cluster, number) == ["1", "next"],
                what="the stale record erased",
            )
            assert again.new_pool(persistent=True, codec="zstd") == pool
            got = again.get_many(pool, [(o, i) for o, i, _ in plain], free=False)
            assert got == [page for _, _, page in plain]  # packed before the dictionary
            for o, i, _ in packed:
                with pytest.raises(RamsterError) as lost:
                    again.get_many(pool, [(o, i)], free=False)
                assert lost.value.message == (
                    "a page of the pool is lost: zstd page names dictionary 1, which is not "
                    "known here"
                )
            assert again.stats()["zstd_pages_lost"] == len(packed)
            # A new dictionary never takes an id the record named.
            more: Pages = [(3, n, record_page(3000 + n)) for n in range(200)]
            put_all(again, pool, more)
            wait_for(lambda: again.stats()["zstd_dicts_trained"] == 1, what="a new dictionary")
            assert dictionary_keys(etcd, etcd_cluster, number) == ["1", "8", "next"]
    finally:
        cluster.close()


def test_a_sealing_node_records_its_dictionaries_sealed_and_opens_them_after_a_restart(
    node_factory: NodeFactory, etcd: EtcdProcess, etcd_cluster: str, pki: Path
) -> None:
    cluster = Cluster(node_factory, etcd.url, etcd_cluster, copies=2)
    try:
        a, number, pool, pages = trained_pool(cluster, pki)
        packed: Pages = [(2, n, record_page(1000 + n)) for n in range(100)]
        put_all(a, pool, packed)
        key = f"/ramster/{etcd_cluster}/dictionaries/{number}/1"
        record = json.loads(etcd.ctl("get", key, "--print-value-only"))
        assert sorted(record) == ["pool_uid", "sealed"]  # no byte of it readable in etcd
        a.close()

        with restart(cluster, "A", pki) as again:
            assert again.stats()["zstd_dicts_unreadable"] == 0
            assert again.new_pool(persistent=True, codec="zstd") == pool
            every = pages + packed
            got = again.get_many(pool, [(o, i) for o, i, _ in every], free=False)
            assert got == [page for _, _, page in every]
            assert again.stats()["zstd_pages_lost"] == 0
    finally:
        cluster.close()
