"""Where a page's microseconds go: each step of a 64-page put and get, timed alone in-process.

The steps are those the client library and the node run for a batch, outside gRPC (whose share
`tests.bench.floor` measures): packing pages, building and serialising the request, parsing it
and checking it on the node, the store, the answer, and the client's decoding. Each figure is
µs per page, the best of a few runs over the same pages (docs/performance.md explains them).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ramster.api.v1 import tmem_pb2
from ramster.page import DEFAULT_PAGE_SIZE, PackedPage, compress_page, decompress_page
from ramster.rpc import convert
from ramster.tmem import Hit, PageTable, PoolSpec, Tmem
from ramster.tmem.elsewhere import PageAway
from ramster.wire.messages import key_messages, oid_message, packed_encoding
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


def _fresh_host() -> tuple[Tmem, int]:
    tmem = Tmem(PageTable(ZCache(ZcacheConfig(memory=8 * 2**30))))
    return tmem, tmem.new_pool("budget", PoolSpec(persistent=True))


def _page_message(oid: int, index: int, payload: bytes, same_filled: bool) -> tmem_pb2.Page:
    return tmem_pb2.Page(
        oid=oid_message((oid, 0, 0)),
        index=index,
        data=payload,
        encoding=packed_encoding(same_filled),
        length=DEFAULT_PAGE_SIZE,
    )


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
    answers = [
        convert.packed_response(_pages_of(batch), DEFAULT_PAGE_SIZE).SerializeToString()
        for batch in hits
    ]

    def store() -> None:
        host, fresh = _fresh_host()
        for batch in checked:
            host.put_many("budget", fresh, batch)

    put = [
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
        ("node: parse request", lambda: [tmem_pb2.PutPagesRequest.FromString(r) for r in requests]),
        (
            "node: check pages (convert.pages_of)",
            lambda: [convert.pages_of(r.pages, DEFAULT_PAGE_SIZE) for r in parsed],
        ),
        ("node: store (Tmem.put_many, fresh host)", store),
    ]
    get = [
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
            "node: parse + check keys",
            lambda: [
                convert.keys_of(tmem_pb2.GetPagesRequest.FromString(r).keys) for r in get_requests
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
            "client: parse answer + lz4 decompress",
            lambda: [_decoded(a) for a in answers],
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


def run(pages: list[bytes]) -> None:
    put, get = steps(pages)
    rows = [
        [path, name, f"{_per_page_us(len(pages), work):.2f}"]
        for path, path_steps in (("put", put), ("get", get))
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
