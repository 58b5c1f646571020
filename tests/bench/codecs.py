"""Codecs per pool (issue 16): bytes per stored page (the store's resident memory) and batched
put and get through a real node, for an lz4 pool and a zstd pool, in the same run.

Targets (issue 16, checked in `tests.bench.targets`): zstd stores a page in <= 0.65x the bytes of
lz4, with batched put >= 0.6x and batched get >= 0.8x of lz4's pages/s. Run alone:
``python -m tests.bench.codecs``.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from ramster.client import Client
from ramster.page import pack_page, parse_codec
from ramster.workload.corpus import Corpus, build_corpus
from tests.bench import targets
from tests.bench.core import BATCH, resident_bytes
from tests.bench.table import awaited_rate, print_table
from tests.support.nodes import start_node

CODECS = ("lz4", "zstd")
"""The pools compared: today's codec, and zstd at its default level."""
ROUNDS = 3


async def _batched(address: str, pages: list[bytes], codec: str) -> tuple[float, float]:
    """(put, get) pages/s of `pages` in 64-page put_many and get_many calls, one at a time, into
    a persistent pool packed with `codec`; every page read back is checked once."""
    async with Client(address, client_name=f"bench-{codec}") as client:
        pool = await client.new_pool(persistent=True, codec=codec)
        items = [(n >> 8, n & 0xFF, page) for n, page in enumerate(pages)]
        batches = [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
        keys = [[(oid, index) for oid, index, _ in batch] for batch in batches]

        async def put() -> None:
            for batch in batches:
                await client.put_many(pool, batch)

        async def get() -> None:
            for batch_keys in keys:
                await client.get_many(pool, batch_keys, free=False)

        put_rate = await awaited_rate(len(pages), put)
        get_rate = await awaited_rate(len(pages), get)
        back = [page for batch_keys in keys for page in await client.get_many(pool, batch_keys)]
        # Pages the store refused (too poorly compressible) are misses; no page comes back wrong.
        assert all(got in (None, page) for got, page in zip(back, pages, strict=True))
        return put_rate, get_rate


def run(corpus: Corpus) -> dict[str, float]:
    pages = corpus.pages
    density = {codec: resident_bytes(pages, codec) for codec in CODECS}
    with tempfile.TemporaryDirectory(prefix="ramster-bench-") as tmp:
        node, info = start_node(Path(tmp), "bench", "--memory", "2GiB")
        try:
            # The machine is shared: each codec's best of rounds taken in turn, so a busy
            # moment costs both codecs alike.
            rates = dict.fromkeys(CODECS, (0.0, 0.0))
            for _ in range(ROUNDS):
                for codec in CODECS:
                    put, get = asyncio.run(_batched(info["address"], pages[:8192], codec))
                    rates[codec] = (max(rates[codec][0], put), max(rates[codec][1], get))
        finally:
            node.stop()
    per_page = {c: d["rss_bytes"] / d["pages"] for c, d in density.items()}
    packed = {
        codec: sum(len(pack_page(page, parse_codec(codec)).payload) for page in pages) / len(pages)
        for codec in CODECS
    }
    zstd_bytes = per_page["zstd"] / per_page["lz4"]
    zstd_put = rates["zstd"][0] / rates["lz4"][0]
    zstd_get = rates["zstd"][1] / rates["lz4"][1]
    print_table(
        f"codecs per pool, {len(pages)} corpus pages (bytes: store RSS; rates: a node, "
        f"{BATCH}-page calls)",
        ["codec", "bytes/page (RSS)", "packed bytes/page", "put pages/s", "get pages/s"],
        [
            [codec, per_page[codec], packed[codec], rates[codec][0], rates[codec][1]]
            for codec in CODECS
        ],
    )
    return {"zstd_bytes_x": zstd_bytes, "zstd_put_x": zstd_put, "zstd_get_x": zstd_get}


if __name__ == "__main__":
    targets.run(run(build_corpus(count=16384)), issues=(16,))
