"""Where a page's microseconds go: each step of a 64-page put and get, timed alone in-process.

The steps are those the client library and the node run for a batch, outside gRPC (whose share
`tests.bench.floor` measures): packing pages, building and serialising the request, parsing it
and checking it on the node, the store, the answer, and the client's decoding; and those an
origin and a holder run for a batch of the Peer service (`peer_steps`). Each figure is
µs per page, the best of a few runs over the same pages (docs/performance.md explains them).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from zlib import crc32

from ramster.api.v1 import peer_pb2, tmem_pb2
from ramster.page import DEFAULT_PAGE_SIZE, PackedPage, compress_page, decompress_page, pack_page
from ramster.remote.handles import RemoteRef, Shipment
from ramster.rpc import convert, foreign_pages
from ramster.tmem import Hit, PageTable, PoolSpec, Tmem
from ramster.tmem.elsewhere import PageAway
from ramster.tmem.table import PageData
from ramster.wire.batches import key_batch, spans
from ramster.wire.messages import key_messages, oid_message, packed_encoding
from ramster.wire.peer_messages import (
    Answered,
    batch_answers,
    get_batch_request,
    get_batch_response,
    get_request,
    get_response,
    page_answers,
    put_batch_request,
    remote_page,
)
from ramster.zcache import ZCache, ZcacheConfig
from tests.bench.references import BATCH
from tests.bench.table import print_table

Step = tuple[str, Callable[[], object]]


def _per_page_us(pages: int, work: Callable[[], object], rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best / pages * 1e6


def _fresh_host() -> tuple[Tmem[Any], int]:
    tmem = Tmem(PageTable(ZCache(ZcacheConfig(memory=8 * 2**30))))
    return tmem, tmem.new_pool("budget", PoolSpec(persistent=True))


def _page_message(oid: int, index: int, payload: bytes, same_filled: bool) -> tmem_pb2.Page:
    return tmem_pb2.Page(
        oid=oid_message((oid, 0, 0)),
        index=index,
        data=payload,
        encoding=packed_encoding(PackedPage(payload, same_filled, DEFAULT_PAGE_SIZE)),
        length=DEFAULT_PAGE_SIZE,
    )


def _lean_put(batch: list[tuple[int, int, bytes, bool]]) -> bytes:
    """A lean put of `batch`'s packed pages, serialised, as the client library builds it."""
    lz4, same = tmem_pb2.PAGE_ENCODING_LZ4, tmem_pb2.PAGE_ENCODING_SAME_FILLED
    request: bytes = tmem_pb2.PutPageBatchRequest(
        client="b",
        pool_id=1,
        keys=key_batch([((o, 0, 0), i) for o, i, _, _ in batch]),
        data=b"".join(payload for _, _, payload, _ in batch),
        lengths=[len(payload) for _, _, payload, _ in batch],
        encodings=[same if same_filled else lz4 for _, _, _, same_filled in batch],
        page_lengths=[DEFAULT_PAGE_SIZE] * len(batch),
    ).SerializeToString()
    return request


def _lean_decoded(answer: bytes) -> list[bytes | None]:
    response = tmem_pb2.GetPageBatchResponse.FromString(answer)
    data, same = response.data, tmem_pb2.PAGE_ENCODING_SAME_FILLED
    return [
        decompress_page(data[start:end], encoding == same, response.page_size)
        if end > start
        else None
        for (start, end), encoding in zip(spans(response.lengths), response.encodings, strict=True)
    ]


def _lean_pages(request: bytes) -> list[PageData]:
    parsed = tmem_pb2.PutPageBatchRequest.FromString(request)
    keys = convert.keys_of_batch(parsed.keys)
    return convert.pages_of_batch(parsed, len(keys), DEFAULT_PAGE_SIZE)


def steps(pages: list[bytes]) -> tuple[list[Step], list[Step]]:
    """The put's and the get's steps over `pages` in BATCH-page batches, per-page messages."""
    items = [(n >> 8, n & 0xFF, page) for n, page in enumerate(pages)]
    batches = [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
    packed = [[(o, i, *compress_page(p)) for o, i, p in batch] for batch in batches]
    requests = [
        tmem_pb2.PutPagesRequest(
            client="b", pool_id=1, pages=[_page_message(*page) for page in batch]
        ).SerializeToString()
        for batch in packed
    ]
    parsed = [tmem_pb2.PutPagesRequest.FromString(r) for r in requests]
    lean_requests = [_lean_put(batch) for batch in packed]
    checked = [convert.pages_of(r.pages, DEFAULT_PAGE_SIZE) for r in parsed]
    tmem, pool = _fresh_host()
    for batch in checked:
        tmem.put_many("budget", pool, batch)
    keys = [[(((o, 0, 0)), i) for o, i, _ in batch] for batch in batches]
    get_requests = [
        tmem_pb2.GetPagesRequest(client="b", pool_id=1, keys=key_messages(k)).SerializeToString()
        for k in keys
    ]
    hits = [tmem.get_many_packed("budget", pool, k) for k in keys]
    lean_get_requests = [
        tmem_pb2.GetPageBatchRequest(client="b", pool_id=1, keys=key_batch(k)).SerializeToString()
        for k in keys
    ]
    lean_answers = [
        convert.batch_response(_pages_of(batch), DEFAULT_PAGE_SIZE).SerializeToString()
        for batch in hits
    ]
    answers = [
        convert.packed_response(_pages_of(batch), DEFAULT_PAGE_SIZE).SerializeToString()
        for batch in hits
    ]

    def store() -> None:
        host, fresh = _fresh_host()
        for batch in checked:
            host.put_many("budget", fresh, batch)

    put: list[Step] = [
        ("client: lz4 compress", lambda: [[compress_page(p) for _, _, p in b] for b in batches]),
        (
            "client: build + serialise request",
            lambda: [
                tmem_pb2.PutPagesRequest(
                    client="b", pool_id=1, pages=[_page_message(*page) for page in batch]
                ).SerializeToString()
                for batch in packed
            ],
        ),
        ("client: build + serialise lean request", lambda: [_lean_put(b) for b in packed]),
        ("node: parse request", lambda: [tmem_pb2.PutPagesRequest.FromString(r) for r in requests]),
        (
            "node: check pages (convert.pages_of)",
            lambda: [convert.pages_of(r.pages, DEFAULT_PAGE_SIZE) for r in parsed],
        ),
        ("node: parse + check lean request", lambda: [_lean_pages(r) for r in lean_requests]),
        ("node: store (Tmem.put_many, fresh host)", store),
    ]
    get: list[Step] = [
        (
            "client: build + serialise request",
            lambda: [
                tmem_pb2.GetPagesRequest(
                    client="b", pool_id=1, keys=key_messages(k)
                ).SerializeToString()
                for k in keys
            ],
        ),
        (
            "client: build + serialise lean request",
            lambda: [
                tmem_pb2.GetPageBatchRequest(
                    client="b", pool_id=1, keys=key_batch(k)
                ).SerializeToString()
                for k in keys
            ],
        ),
        (
            "node: parse + check keys",
            lambda: [
                convert.keys_of(tmem_pb2.GetPagesRequest.FromString(r).keys) for r in get_requests
            ],
        ),
        (
            "node: parse + check lean keys",
            lambda: [
                convert.keys_of_batch(tmem_pb2.GetPageBatchRequest.FromString(r).keys)
                for r in lean_get_requests
            ],
        ),
        (
            "node: look up (Tmem.get_many_packed)",
            lambda: [tmem.get_many_packed("budget", pool, k) for k in keys],
        ),
        (
            "node: build + serialise answer",
            lambda: [
                convert.packed_response(
                    _pages_of(batch),
                    DEFAULT_PAGE_SIZE,
                ).SerializeToString()
                for batch in hits
            ],
        ),
        (
            "node: build + serialise lean answer",
            lambda: [
                convert.batch_response(_pages_of(batch), DEFAULT_PAGE_SIZE).SerializeToString()
                for batch in hits
            ],
        ),
        (
            "client: parse answer + lz4 decompress",
            lambda: [_decoded(a) for a in answers],
        ),
        (
            "client: parse lean answer + lz4 decompress",
            lambda: [_lean_decoded(a) for a in lean_answers],
        ),
    ]
    return put, get


def _pages_of(hits: list[Hit | PageAway | None]) -> list[PackedPage | None]:
    return [hit.page if isinstance(hit, Hit) else None for hit in hits]


def _decoded(answer: bytes) -> list[bytes]:
    response = tmem_pb2.GetPagesResponse.FromString(answer)
    return [
        decompress_page(data, encoding == tmem_pb2.PAGE_ENCODING_SAME_FILLED, response.page_size)
        for found, data, encoding in zip(
            response.found, response.data, response.encodings, strict=True
        )
        if found
    ]


ORIGIN = peer_pb2.Origin(node_number=2, epoch="00062a0b1c2d3e4f")
VERSION = 1_700_000_000_000_000


def peer_steps(pages: list[bytes]) -> tuple[list[Step], list[Step]]:
    """The Peer put's and get's steps over `pages` in BATCH-page batches, per-page form beside
    the lean one: what an origin's `PeerLink` and a holder's `PeerService` run around gRPC (the
    pages packed, not sealed: a seal costs the same in both forms)."""
    shipments = [
        Shipment(
            pool_uid=1,
            oid=(n >> 8, 0, 0),
            index=n & 0xFF,
            version=VERSION + n,
            obj_id=n >> 8,
            slot=n & 0xFF,
            persistent=True,
            page=pack_page(page),
        )
        for n, page in enumerate(pages)
    ]
    batches = [shipments[i : i + BATCH] for i in range(0, len(shipments), BATCH)]
    payloads = [[(s.page.payload, packed_encoding(s.page)) for s in b] for b in batches]

    def per_page_put(batch: list[Shipment], sent: list[tuple[bytes, Any]]) -> bytes:
        pages = [remote_page(s, *p) for s, p in zip(batch, sent, strict=True)]
        request: bytes = peer_pb2.PeerPutRequest(origin=ORIGIN, pages=pages).SerializeToString()
        return request

    def lean_put(batch: list[Shipment], sent: list[tuple[bytes, Any]]) -> bytes:
        request: bytes = put_batch_request(ORIGIN, "", [], batch, sent).SerializeToString()
        return request

    puts = [per_page_put(b, p) for b, p in zip(batches, payloads, strict=True)]
    lean_puts = [lean_put(b, p) for b, p in zip(batches, payloads, strict=True)]
    refs = [
        [
            RemoteRef(s.pool_uid, s.oid, s.index, s.version, 2, s.obj_id, True, DEFAULT_PAGE_SIZE)
            for s in batch
        ]
        for batch in batches
    ]
    gets = [get_request(ORIGIN, r).SerializeToString() for r in refs]
    lean_gets = [get_batch_request(ORIGIN, r).SerializeToString() for r in refs]
    held = [[(s.page, s.version) for s in batch] for batch in batches]
    answers = [get_response(h).SerializeToString() for h in held]
    lean_answers = [get_batch_response(h).SerializeToString() for h in held]

    def checked(rows: list[Answered | None]) -> list[bool]:
        """The origin's check of each page answered: its checksum."""
        return [row is not None and crc32(row[0]) == row[3] for row in rows]

    put: list[Step] = [
        (
            "origin: build + serialise request",
            lambda: [per_page_put(b, p) for b, p in zip(batches, payloads, strict=True)],
        ),
        (
            "origin: build + serialise lean request",
            lambda: [lean_put(b, p) for b, p in zip(batches, payloads, strict=True)],
        ),
        (
            "holder: parse + check request",
            lambda: [
                foreign_pages.pages_of(peer_pb2.PeerPutRequest.FromString(r).pages) for r in puts
            ],
        ),
        (
            "holder: parse + check lean request",
            lambda: [
                foreign_pages.pages_of_batch(peer_pb2.PeerPutBatchRequest.FromString(r))
                for r in lean_puts
            ],
        ),
    ]
    get: list[Step] = [
        (
            "origin: build + serialise request",
            lambda: [get_request(ORIGIN, r).SerializeToString() for r in refs],
        ),
        (
            "origin: build + serialise lean request",
            lambda: [get_batch_request(ORIGIN, r).SerializeToString() for r in refs],
        ),
        (
            "holder: parse + check keys",
            lambda: [
                foreign_pages.keys_of(peer_pb2.PeerGetRequest.FromString(r).keys) for r in gets
            ],
        ),
        (
            "holder: parse + check lean keys",
            lambda: [
                foreign_pages.keys_of_batch(peer_pb2.PeerGetBatchRequest.FromString(r))
                for r in lean_gets
            ],
        ),
        (
            "holder: build + serialise answer",
            lambda: [get_response(h).SerializeToString() for h in held],
        ),
        (
            "holder: build + serialise lean answer",
            lambda: [get_batch_response(h).SerializeToString() for h in held],
        ),
        (
            "origin: parse answer + checksums",
            lambda: [
                checked(page_answers(peer_pb2.PeerGetResponse.FromString(a))) for a in answers
            ],
        ),
        (
            "origin: parse lean answer + checksums",
            lambda: [
                checked(batch_answers(peer_pb2.PeerGetBatchResponse.FromString(a), BATCH, 2))
                for a in lean_answers
            ],
        ),
    ]
    return put, get


def run(pages: list[bytes]) -> None:
    put, get = steps(pages)
    peer_put, peer_get = peer_steps(pages)
    paths = (("put", put), ("get", get), ("peer put", peer_put), ("peer get", peer_get))
    rows = [
        [path, name, f"{_per_page_us(len(pages), work):.2f}"]
        for path, path_steps in paths
        for name, work in path_steps
    ]
    print_table(
        f"where a page's µs go outside gRPC, {BATCH}-page batches (best of 5)",
        ["path", "step", "µs/page"],
        rows,
    )


if __name__ == "__main__":  # this section alone: python -m tests.bench.budget
    from ramster.workload.corpus import build_corpus

    run(build_corpus(count=8192).pages)
