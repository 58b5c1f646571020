"""What a client sends of a zstd pool's pages (issue 16), on a real node: raw while the node
samples them to train the pool's dictionary (each put's answer says so), then packed, with the
dictionary the node trained (fetched once) or with none; every page reads back exact."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from ramster.api.v1 import tmem_pb2
from ramster.client import SyncClient
from ramster.client._transport import Transport
from ramster.page import Codec, pack_page
from ramster.page_dictionary import PageDictionary
from ramster.wire.messages import packed_of
from tests.support.cluster import record_page
from tests.support.nodes import NodeProcess
from tests.support.processes import wait_for
from tests.support.wire import RawNode

ZSTD1 = Codec("zstd", 1)
RAW, ZSTD = tmem_pb2.PAGE_ENCODING_UNSPECIFIED, tmem_pb2.PAGE_ENCODING_ZSTD
Pages = list[tuple[int, int, bytes]]
Calls = list[tuple[str, Any]]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[Calls]:
    """Every call the client library makes: (method, request)."""
    made: Calls = []
    unary = Transport._unary

    async def spied(self: Transport, method: str, request: Any, response_type: Any) -> Any:
        made.append((method, request))
        return await unary(self, method, request, response_type)

    monkeypatch.setattr(Transport, "_unary", spied)
    yield made


def puts(calls: Calls) -> list[tmem_pb2.PutPageBatchRequest]:
    return [request for method, request in calls if method == "Tmem/PutPageBatch"]


def read_back(client: SyncClient, pool: int, pages: Pages) -> None:
    got = client.get_many(pool, [(oid, index) for oid, index, _ in pages], free=False)
    assert got == [page for _, _, page in pages]


def test_pages_go_raw_while_the_node_samples_then_packed_with_the_trained_dictionary(
    node: NodeProcess, calls: Calls
) -> None:
    with SyncClient(node.address, "app") as client:
        for name, value in (("dict_samples", "200"), ("dict_size", "16384")):
            client.set_param(name, value)
        pool = client.new_pool(codec="zstd")
        samples: Pages = [(1, n, record_page(n)) for n in range(200)]
        calls.clear()
        assert client.put_many(pool, samples) == [True] * 200
        sent = puts(calls)
        assert sum(len(p.encodings) for p in sent) == 200
        assert {e for p in sent for e in p.encodings} == {RAW}
        assert sum(len(p.data) for p in sent) == 200 * 4096
        wait_for(lambda: client.stats()["zstd_dicts_trained"] == 1, what="a dictionary")

        calls.clear()
        # The client heard of no dictionary yet: raw; the answer names it, and the client
        # fetches it once and packs the next pages with it.
        heard: Pages = [(2, n, record_page(1000 + n)) for n in range(64)]
        packed: Pages = [(3, n, record_page(2000 + n)) for n in range(64)]
        assert client.put_many(pool, heard) == [True] * 64
        assert client.put_many(pool, packed) == [True] * 64
        assert [method for method, _ in calls] == [
            "Tmem/PutPageBatch",
            "Tmem/GetDictionary",
            "Tmem/PutPageBatch",
        ]
        first, second = puts(calls)
        assert (set(first.encodings), len(first.data)) == ({RAW}, 64 * 4096)
        with RawNode(node.address) as wire:
            fetched = wire.tmem("GetDictionary", client="app", pool_id=pool, dictionary=1)
        dictionary = PageDictionary(fetched.parsed(tmem_pb2.GetDictionaryResponse).dictionary)
        frames = [pack_page(page, ZSTD1, dictionary).payload for _, _, page in packed]
        assert set(second.encodings) == {ZSTD}
        assert second.data == b"".join(frames)
        assert len(second.data) < 64 * 4096 / 4

        calls.clear()
        read_back(client, pool, samples + heard + packed)
        assert {method for method, _ in calls} == {"Tmem/GetPageBatch"}  # known: not fetched
        assert client.stats()["zstd_pages_lost"] == 0


def test_a_persistent_pool_s_pages_go_packed_where_the_node_trains_none_for_it(
    node: NodeProcess, calls: Calls
) -> None:
    # A node with no record of dictionaries (no etcd) samples no persistent page: its first
    # answer says so, and the client packs from the second put on, with zstd alone.
    with SyncClient(node.address, "app") as client:
        pool = client.new_pool(codec="zstd", persistent=True)
        first: Pages = [(1, n, record_page(n)) for n in range(64)]
        second: Pages = [(2, n, record_page(1000 + n)) for n in range(64)]
        calls.clear()
        assert client.put_many(pool, first) == [True] * 64
        assert client.put_many(pool, second) == [True] * 64
        raw, packed = puts(calls)
        assert (set(raw.encodings), len(raw.data)) == ({RAW}, 64 * 4096)
        assert set(packed.encodings) == {ZSTD}
        assert packed.data == b"".join(pack_page(page, ZSTD1).payload for _, _, page in second)
        assert [method for method, _ in calls] == ["Tmem/PutPageBatch"] * 2
        read_back(client, pool, first + second)


def test_a_client_packing_with_a_dictionary_the_node_dropped_meanwhile_sends_the_pages_raw(
    node: NodeProcess, calls: Calls
) -> None:
    # The node advised dictionary 1, then retrained (its pool's pages changed) and dropped it
    # with its last page before this client put again: the put is refused whole as
    # DICTIONARY_RETIRED, and the client sends the same pages raw.
    with SyncClient(node.address, "app") as late, RawNode(node.address) as wire:
        for name, value in (("dict_samples", "200"), ("dict_size", "16384"), ("dict_drift", "5")):
            late.set_param(name, value)
        pool = late.new_pool(codec="zstd")
        assert late.put_many(pool, [(1, n, record_page(n)) for n in range(200)]) == [True] * 200
        wait_for(lambda: late.stats()["zstd_dicts_trained"] == 1, what="a dictionary")
        heard: Pages = [(2, n, record_page(1000 + n)) for n in range(200)]
        assert late.put_many(pool, heard) == [True] * 200  # answered: pack with dictionary 1
        # Another program of the same identity puts other pages (raw) into the pool.
        for start in range(0, 600, 50):
            pages = [
                tmem_pb2.Page(oid=tmem_pb2.Oid(word0=3), index=n, data=record_page(n, seed=2))
                for n in range(start, start + 50)
            ]
            answer = wire.tmem("PutPages", client="app", pool_id=pool, pages=pages)
            stored = answer.parsed(tmem_pb2.PutPagesResponse).results
            assert list(stored) == [tmem_pb2.PUT_STATUS_STORED] * 50
        wait_for(lambda: late.stats()["zstd_dicts_trained"] == 2, what="a second dictionary")
        oids = [tmem_pb2.Oid(word0=oid) for oid in (1, 2, 3)]
        flushed = wire.tmem("FlushObjects", client="app", pool_id=pool, oids=oids)
        assert list(flushed.parsed(tmem_pb2.FlushObjectsResponse).flushed) == [True] * 3
        wait_for(lambda: late.stats()["zstd_dicts_dropped"] == 1, what="dictionary 1 dropped")

        calls.clear()
        again: Pages = [(4, n, record_page(3000 + n)) for n in range(64)]
        assert late.put_many(pool, again) == [True] * 64
        refused, resent = puts(calls)
        dictionary = wire.tmem("GetDictionary", client="app", pool_id=pool, dictionary=1)
        assert dictionary.refusal == (
            grpc.StatusCode.NOT_FOUND,
            f"dictionary 1 of pool_id {pool} is unknown: no page of the pool uses it (any more)",
        )
        assert set(refused.encodings) == {ZSTD}
        assert packed_of(refused.data[: refused.lengths[0]], ZSTD, 4096).dictionary == 1
        assert (set(resent.encodings), resent.data) == ({RAW}, b"".join(p for _, _, p in again))
        read_back(late, pool, again)
        assert late.stats()["zstd_pages_lost"] == 0
