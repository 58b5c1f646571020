"""A codec per pool (issue 16) on real nodes: zstd pools round-trip pages the client packs and
pages the node packs, through remotify, second copies, a restarted origin's recovery and an NBD
export; `ramster stats` shows bytes per page and the ratio of each codec; bad codecs are refused
naming the field and the value."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
import zstandard
from google.rpc.error_details_pb2 import BadRequest

from nodemanager.cli import list_members
from ramster.api.v1 import tmem_pb2
from ramster.client import Cleancache, Frontswap, SyncClient
from ramster.errors import InvalidArgument
from ramster.launcher import free_port
from ramster.page import Codec, pack_page, unpack_page
from ramster.page_dictionary import PageDictionary
from ramster.wire.messages import packed_of
from tests.support.cluster import (
    Cluster,
    done_shipping,
    key,
    pages_of,
    read_back,
    record_page,
    store_all,
    text_page,
)
from tests.support.etcd import EtcdProcess
from tests.support.nbd import missing_tools, run_tool, uri
from tests.support.nodes import NodeFactory, NodeProcess, run_cli
from tests.support.processes import wait_for
from tests.support.tools import require
from tests.support.wire import RawNode

ZSTD3 = Codec("zstd", 3)


def new_pool(wire: RawNode, **spec: object) -> tmem_pb2.NewPoolResponse:
    answer: tmem_pb2.NewPoolResponse = wire.tmem("NewPool", client="app", **spec).parsed(
        tmem_pb2.NewPoolResponse
    )
    return answer


def get_packed(wire: RawNode, pool: int, oid: int, index: int) -> tmem_pb2.GetPagesResponse:
    """Page (`oid`, `index`) of `pool` as GetPages answers a caller asking for it packed."""
    return wire.tmem(
        "GetPages",
        client="app",
        pool_id=pool,
        keys=[tmem_pb2.PageKey(oid=tmem_pb2.Oid(word0=oid), index=index)],
        mode=tmem_pb2.GET_MODE_KEEP,
        packed=True,
    ).parsed(tmem_pb2.GetPagesResponse)


def test_a_zstd_pool_round_trips_packed_and_raw_pages_and_stats_show_each_codec(
    node: NodeProcess,
) -> None:
    numbers = list(range(64))
    with SyncClient(node.address, "app") as client:
        zstd = client.new_pool(persistent=True, codec="zstd:3")
        lz4 = client.new_pool(persistent=True)
        assert client.put_many(zstd, [(*key(n), text_page(n)) for n in numbers]) == [True] * 64
        assert client.put_many(lz4, [(*key(n), text_page(n)) for n in numbers[:8]]) == [True] * 8
        assert client.put_many(zstd, [(9, 0, bytes(4096))]) == [True]  # one byte, as with lz4
        assert read_back(client, zstd, numbers, free=False) == []
        assert client.get_many(zstd, [(9, 0)], free=False) == [bytes(4096)]
        with RawNode(node.address) as wire:
            # A raw page: the node packs it with the pool's codec, and answers it packed so.
            page = tmem_pb2.Page(oid=tmem_pb2.Oid(word0=7), index=1, data=text_page(100))
            wire.tmem("PutPages", client="app", pool_id=zstd, pages=[page])
            answer = get_packed(wire, zstd, 7, 1)
        assert list(answer.encodings) == [tmem_pb2.PAGE_ENCODING_ZSTD]
        assert answer.data[0] == pack_page(text_page(100), ZSTD3).payload
        assert unpack_page(packed_of(answer.data[0], answer.encodings[0], 4096)) == text_page(100)
        stats = client.stats()
    zbytes = sum(len(pack_page(text_page(n), ZSTD3).payload) for n in [*numbers, 100])
    lz4_bytes = sum(len(pack_page(text_page(n)).payload) for n in numbers[:8])
    codec_counters = ("zstd_zpages", "zstd_zbytes", "zstd_bytes", "lz4_zpages", "lz4_zbytes")
    assert {name: stats[name] for name in (*codec_counters, "lz4_bytes")} == {
        "zstd_zpages": 65,
        "zstd_zbytes": zbytes,
        "zstd_bytes": 65 * 4096,
        "lz4_zpages": 8,
        "lz4_zbytes": lz4_bytes,
        "lz4_bytes": 8 * 4096,
    }
    shown = run_cli("stats", "--node", node.address)
    assert shown.returncode == 0, shown.stderr
    assert f"  lz4: 8 pages, {lz4_bytes / 8:,.0f} bytes per page, ratio " in shown.stdout
    assert (
        f"  zstd: 65 pages, {zbytes / 65:,.0f} bytes per page, ratio {65 * 4096 / zbytes:.2f}\n"
        in shown.stdout
    )


@pytest.mark.parametrize("persistent", [False, True], ids=["ephemeral", "persistent"])
def test_gets_of_plain_zstd_pages_make_one_call_a_batch(
    node: NodeProcess, persistent: bool
) -> None:
    """A zstd frame made with no dictionary names dictionary 0: the client decodes it as it is,
    and asks the node for no dictionary (it asked for "dictionary 0" once a batch, and was
    refused NOT_FOUND: a second call on every get of an ephemeral zstd pool)."""
    numbers = list(range(64))
    with SyncClient(node.address, "app") as client:
        pool = client.new_pool(persistent=persistent, codec="zstd")
        assert client.put_many(pool, [(*key(n), text_page(n)) for n in numbers]) == [True] * 64
        before = client.rpc_count
        for _ in range(3):
            assert read_back(client, pool, numbers, free=False) == []
        assert client.rpc_count - before == 3  # one GetPageBatch each, nothing else


@pytest.mark.parametrize(
    ("spec", "message", "field"),
    [
        ({"codec": "brotli"}, "codec 'brotli' is invalid: expected lz4 or zstd", "codec"),
        (
            {"codec": "zstd", "codec_level": 20},
            "codec_level 20 is invalid: expected 1..19 for zstd (0: 1)",
            "codec_level",
        ),
        (
            {"codec": "lz4", "codec_level": 1},
            "codec_level 1 is invalid: expected 0 for lz4, which has no levels",
            "codec_level",
        ),
        (
            {"codec_level": 5},
            "codec_level 5 is invalid: expected 0 when codec is empty (the node's default codec)",
            "codec_level",
        ),
    ],
)
def test_new_pool_refuses_a_bad_codec_naming_the_field_and_the_value(
    node: NodeProcess, spec: dict[str, object], message: str, field: str
) -> None:
    with RawNode(node.address) as wire:
        answer = wire.tmem("NewPool", client="app", **spec)
        assert answer.refusal == (grpc.StatusCode.INVALID_ARGUMENT, message)
        violation = BadRequest.FieldViolation(field=field, description=message)
        assert BadRequest(field_violations=[violation]) in answer.error_details
    with SyncClient(node.address, "app") as client:
        assert client.stats()["pool_count"] == 0


def test_a_pool_that_names_no_codec_takes_the_nodes_default_param(node: NodeProcess) -> None:
    with RawNode(node.address) as wire:
        assert (new_pool(wire).codec, new_pool(wire).codec_level) == ("lz4", 0)
        wire.admin("SetParam", name="codec", value="zstd:5")
        answer = new_pool(wire, persistent=True)
        assert (answer.codec, answer.codec_level) == ("zstd", 5)
        answer = new_pool(wire, codec="lz4")
        assert (answer.codec, answer.codec_level) == ("lz4", 0)
        refused = wire.admin("SetParam", name="codec", value="zstd:99")
        assert refused.refusal == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "param codec value 'zstd:99' is invalid: expected lz4, zstd or zstd:LEVEL with LEVEL "
            "in 1..19",
        )


def test_zstd_pages_go_to_a_peer_come_back_from_it_and_to_their_restarted_origin(
    node_factory: NodeFactory, etcd: EtcdProcess, etcd_cluster: str
) -> None:
    cluster = Cluster(node_factory, etcd.url, etcd_cluster)
    try:
        node_a = cluster.start("A", "2MiB", listen=f"127.0.0.1:{free_port()}")
        cluster.start("B", "32MiB")
        wait_for(lambda: members(etcd, etcd_cluster) == ["A", "B"], what="A and B in the view")
        a = cluster.clients["A"]
        pool = a.new_pool(persistent=True, codec="zstd")
        numbers = pages_of(range(48))  # about 4 MiB packed: A ships its oldest pages to B
        store_all(a, pool, numbers)
        assert done_shipping(lambda: cluster.stats("A"))["remote_pers_pages"] > 0
        assert read_back(a, pool, numbers, free=False) == []  # remote gets among them
        done_shipping(lambda: cluster.stats("A"))
        held = cluster.stats("B")["foreign_pers_pages"]
        assert held > 0

        node_a.kill()
        wait_for(lambda: members(etcd, etcd_cluster) == ["B"], what="A out of the view")
        node_a.start()
        with SyncClient(node_a.address, "test-A") as again:
            assert again.stats()["pers_pages_recovered"] == held
            assert again.new_pool(persistent=True, codec="zstd") == pool  # claims its pool
            # One copy: the pages A held itself died with it; every page B held comes back.
            missing = read_back(again, pool, numbers, free=False)
            assert len(numbers) - len(missing) == held
    finally:
        cluster.close()


def test_second_copies_of_zstd_pages_are_repaired_when_their_holder_dies(
    node_factory: NodeFactory, etcd: EtcdProcess, etcd_cluster: str
) -> None:
    cluster = Cluster(node_factory, etcd.url, etcd_cluster, copies=2)
    try:
        for name in ("A", "B", "C"):
            cluster.start(name, "32MiB")
        wait_for(lambda: members(etcd, etcd_cluster) == ["A", "B", "C"], what="A, B, C up")
        a = cluster.clients["A"]
        pool = a.new_pool(persistent=True, codec="zstd:3")
        numbers = pages_of(range(8))
        store_all(a, pool, numbers)
        held = cluster.foreign_pers("B", "C")
        assert sum(held.values()) == len(numbers)  # every page's second copy, on B or C
        holder = max(held, key=lambda name: held[name])
        other = "C" if holder == "B" else "B"
        cluster.nodes[holder].kill()
        wait_for(
            lambda: cluster.stats(other)["foreign_pers_pages"] == len(numbers),
            30.0,
            f"{other} holding every second copy",
        )
        assert cluster.stats("A")["pers_pages_at_risk"] == 0
        assert read_back(a, pool, numbers, free=False) == []
    finally:
        cluster.close()


def members(etcd: EtcdProcess, cluster: str) -> list[str]:
    return sorted(m.name for m in asyncio.run(list_members(etcd.url, cluster)))


def test_an_nbd_export_packs_its_blocks_with_the_codec_it_was_created_with(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    require(f"NBD clients absent: {', '.join(missing_tools())}" if missing_tools() else None)
    socket_path = tmp_path / "nbd.sock"
    node = node_factory.start("n1", extra_flags=("--nbd", f"unix://{socket_path}"))
    done = run_cli(
        "export", "create", "disk", "--size", "1MiB", "--codec", "zstd:3", "--node", node.address
    )
    assert done.returncode == 0, done.stderr
    refused = run_cli("export", "create", "d2", "--size", "1MiB", "--codec", "gzip")
    assert "codec 'gzip' is invalid: expected lz4, zstd or zstd:LEVEL" in refused.stderr
    data = b"".join(text_page(n) for n in range(256))
    source, back = tmp_path / "source", tmp_path / "back"
    source.write_bytes(data)
    run_tool("nbdcopy", str(source), uri(socket_path, "disk"))
    run_tool("nbdcopy", uri(socket_path, "disk"), str(back))
    assert back.read_bytes() == data
    with SyncClient(node.address, "test") as client:
        stats = client.stats()
    assert (stats["zstd_zpages"], stats["lz4_zpages"]) == (256, 0)
    assert stats["zstd_zbytes"] == sum(
        len(pack_page(text_page(n), ZSTD3).payload) for n in range(256)
    )


def test_frontswap_and_cleancache_ask_for_their_codec(node: NodeProcess) -> None:
    swap = Frontswap(node.address, codec="zstd:3")
    cache = Cleancache(node.address, codec="zstd")
    try:
        assert swap.wait_ready(10) and cache.wait_ready(10)
        swap.init(0, 64)
        fs = cache.init_fs()
        assert [swap.store(0, n, text_page(n)) for n in range(16)] == [True] * 16
        for n in range(8):
            cache.put_page(fs, 1, n, text_page(100 + n))
        with SyncClient(node.address, "test") as client:
            assert (client.stats()["zstd_zpages"], client.stats()["lz4_zpages"]) == (24, 0)
        assert [swap.load(0, n) for n in range(16)] == [text_page(n) for n in range(16)]
        got = [cache.get_page(fs, 1, n) for n in range(8)]
        assert got == [text_page(100 + n) for n in range(8)]
    finally:
        swap.close()
        cache.close()
    with pytest.raises(InvalidArgument) as refused:
        Frontswap(node.address, codec="zstd:0x")
    assert refused.value.message == (
        "codec 'zstd:0x' is invalid: expected lz4, zstd or zstd:LEVEL with LEVEL in 1..19"
    )


def test_an_ephemeral_zstd_pool_trains_a_dictionary_and_every_page_reads_back_exact(
    node: NodeProcess,
) -> None:
    with SyncClient(node.address, "app") as client:
        for name, value in (("dict_samples", "200"), ("dict_size", "16384"), ("dict_drift", "5")):
            client.set_param(name, value)
        pool = client.new_pool(codec="zstd")
        first = [(1, n, record_page(n)) for n in range(200)]
        assert client.put_many(pool, first) == [True] * 200
        wait_for(lambda: client.stats()["zstd_dicts_trained"] == 1, what="a dictionary")
        before = client.stats()["zstd_zbytes"]
        second = [(2, n, record_page(1000 + n)) for n in range(200)]
        assert client.put_many(pool, second) == [True] * 200
        trained_bytes = client.stats()["zstd_zbytes"] - before
        assert trained_bytes < before / 2  # the same kind of pages in under half the bytes
        with RawNode(node.address) as wire:
            # Packed with the dictionary: answered unpacked to a caller that does not ask for
            # the pool's dictionaries, packed to one that does, which fetches the dictionary.
            answer = get_packed(wire, pool, 2, 3)
            assert list(answer.encodings) == [tmem_pb2.PAGE_ENCODING_UNSPECIFIED]
            assert list(answer.data) == [record_page(1003)]
            keys = tmem_pb2.KeyBatch(oid_word0=[2], indexes=[3])
            batch = wire.tmem(
                "GetPageBatch",
                client="app",
                pool_id=pool,
                keys=keys,
                mode=tmem_pb2.GET_MODE_KEEP,
                dictionaries=True,
            ).parsed(tmem_pb2.GetPageBatchResponse)
            assert list(batch.encodings) == [tmem_pb2.PAGE_ENCODING_ZSTD]
            packed = packed_of(batch.data, batch.encodings[0], 4096)
            assert packed.dictionary == 1
            fetched = wire.tmem("GetDictionary", client="app", pool_id=pool, dictionary=1)
            dictionary = PageDictionary(fetched.parsed(tmem_pb2.GetDictionaryResponse).dictionary)
            assert unpack_page(packed, {1: dictionary}) == record_page(1003)
            # Another identity's call names another client: no such pool for it.
            stranger = wire.tmem("GetDictionary", client="other", pool_id=pool, dictionary=1)
            assert stranger.refusal == (
                grpc.StatusCode.NOT_FOUND,
                f"pool_id {pool} does not exist for client 'local:local/other'",
            )
            unknown = wire.tmem("GetDictionary", client="app", pool_id=pool, dictionary=99)
            assert unknown.refusal == (
                grpc.StatusCode.NOT_FOUND,
                f"dictionary 99 of pool_id {pool} is unknown: no page of the pool uses it (any "
                "more)",
            )
        got = client.get_many(pool, [(o, i) for o, i, _ in first + second], free=False)
        assert got == [page for _, _, page in first + second]

        # Other pages: the ratio drifts, a second dictionary takes over while the pages of the
        # first are still stored, and every page still reads back exact.
        third = [(3, n, record_page(n, seed=2)) for n in range(600)]
        assert client.put_many(pool, third) == [True] * 600
        wait_for(lambda: client.stats()["zstd_dicts_trained"] == 2, what="a second dictionary")
        fourth = [(4, n, record_page(5000 + n, seed=2)) for n in range(50)]
        assert client.put_many(pool, fourth) == [True] * 50
        every = first + second + third + fourth
        assert client.get_many(pool, [(o, i) for o, i, _ in every], free=False) == [
            page for _, _, page in every
        ]
        # The first dictionary goes with the last page that uses it.
        assert client.stats()["zstd_dicts_dropped"] == 0
        client.destroy_pool(pool)
        assert client.stats()["zstd_dicts_dropped"] == 2
        assert client.stats()["zstd_pages_lost"] == 0


def test_pages_packed_with_a_dictionary_go_to_a_peer_and_come_back_exact(
    node_factory: NodeFactory, etcd: EtcdProcess, etcd_cluster: str
) -> None:
    cluster = Cluster(node_factory, etcd.url, etcd_cluster)
    try:
        cluster.start("A", "2MiB")
        cluster.start("B", "32MiB")
        wait_for(lambda: members(etcd, etcd_cluster) == ["A", "B"], what="A and B in the view")
        a = cluster.clients["A"]
        for name, value in (("dict_samples", "200"), ("dict_size", "16384")):
            a.set_param(name, value)
        pool = a.new_pool(codec="zstd")  # private ephemeral: exclusive gets
        pages = {(n // 64, n % 64): record_page(n) for n in range(200)}
        assert a.put_many(pool, [(*k, p) for k, p in pages.items()]) == [True] * 200
        wait_for(lambda: a.stats()["zstd_dicts_trained"] == 1, what="a dictionary")
        # About 3 MiB of pages packed with it: A ships its oldest to B.
        more = {(n // 64, n % 64): record_page(n) for n in range(200, 8200)}
        items = [(*k, p) for k, p in more.items()]
        for start in range(0, len(items), 512):
            assert a.put_many(pool, items[start : start + 512]) == [True] * len(
                items[start : start + 512]
            )
        quiet = done_shipping(lambda: cluster.stats("A"))
        assert quiet["remote_pages"] > 0
        assert cluster.stats("B")["foreign_eph_pages"] == quiet["remote_pages"]
        every = pages | more
        got = a.get_many(pool, list(every))
        wrong = [k for k, data in zip(every, got, strict=True) if data not in (None, every[k])]
        assert wrong == []
        hits = sum(data is not None for data in got)
        stats = cluster.stats("A")
        assert hits == quiet["eph_zpages"] + quiet["remote_pages"]
        assert stats["remote_eph_pages_succ_get"] == quiet["remote_pages"]
        assert stats["zstd_pages_lost"] == 0
    finally:
        cluster.close()


def test_a_page_naming_a_dictionary_its_pool_does_not_have_is_refused(node: NodeProcess) -> None:
    samples = [record_page(n) for n in range(200)]
    foreign = zstandard.train_dictionary(16384, samples, dict_id=7)
    frame = zstandard.ZstdCompressor(dict_data=foreign, write_checksum=True).compress(samples[0])
    with SyncClient(node.address, "app") as client:
        pool = client.new_pool(codec="zstd")
    with RawNode(node.address) as wire:
        page = tmem_pb2.Page(
            oid=tmem_pb2.Oid(word0=1), data=frame, encoding=tmem_pb2.PAGE_ENCODING_ZSTD
        )
        answer = wire.tmem("PutPages", client="app", pool_id=pool, pages=[page])
    assert answer.refusal == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "pages[0].data names zstd dictionary 7, which its reader does not know",
    )


def test_swap_on_and_export_create_refuse_a_bad_codec_before_anything_is_made() -> None:
    for command in (("swap", "on", "--size", "64MiB"), ("export", "create", "x", "--size", "1MiB")):
        done = run_cli(*command, "--codec", "zstd:42")
        assert done.returncode == 2
        assert (
            "codec 'zstd:42' is invalid: expected lz4, zstd or zstd:LEVEL with LEVEL in 1..19"
            in done.stderr
        )
