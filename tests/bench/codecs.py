"""Codecs per pool (issue 16): bytes per stored page (the store's resident memory) and batched
put and get through a real node, in the same run, for an lz4 pool, a zstd pool, and ephemeral
zstd pools whose pages are packed with the dictionary the node trains on them, if it pays off
(`ramster.zcache.dictionaries.pays_off`): at level 1, the pool's, and at level 6. Pages are
packed with the dictionary's content alone (`ramster.page_dictionary`: at zstd's fast levels a
whole dictionary's entropy tables, reused unweighed, packed this corpus's pages larger than zstd
alone, and the node declined it). Beside the RSS, the bytes the store accounts; the store runs
as a node does, its mmap threshold fixed and the heap trimmed after training
(`ramster.pinning`), else a pool that trained a dictionary kept ~7 MB more RSS than it accounts.
Once the node samples no more, the client packs the pages (with the dictionary).

Targets (issue 16, checked in `tests.bench.targets`): zstd with a dictionary stores a page in
<= 0.65x the bytes of lz4, with batched put >= 0.6x and batched get >= 0.8x of lz4's pages/s.
Run alone: ``python -m tests.bench.codecs``.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ramster.client import Client
from ramster.page import pack_page, parse_codec
from ramster.workload.corpus import Corpus, build_corpus
from tests.bench import targets
from tests.bench.core import BATCH, resident_bytes
from tests.bench.table import awaited_rate, print_table
from tests.support.nodes import start_node


@dataclass(frozen=True)
class Pool:
    """A pool compared: its name in the tables, codec, and class (an ephemeral zstd pool's
    pages are packed with a trained dictionary)."""

    name: str
    codec: str
    persistent: bool = True


POOLS = (
    Pool("lz4", "lz4"),
    Pool("zstd", "zstd"),
    Pool("zstd+dict", "zstd", persistent=False),
    Pool("zstd:6+dict", "zstd:6", persistent=False),
)
ROUNDS = 3
TRAIN_TIMEOUT = 60.0


async def _batched(address: str, pages: list[bytes], pool: Pool) -> tuple[float, float, str]:
    """(put, get) pages/s of `pages` in 64-page put_many and get_many calls, one at a time, into
    `pool` (once its dictionary, if any, is trained), and whether the node uses the dictionary;
    every page read back is checked once."""
    async with Client(address, client_name=f"bench-{pool.name}") as client:
        pool_id = await client.new_pool(persistent=pool.persistent, codec=pool.codec)
        items = [(n >> 8, n & 0xFF, page) for n, page in enumerate(pages)]
        batches = [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
        keys = [[(oid, index) for oid, index, _ in batch] for batch in batches]

        async def put() -> None:
            for batch in batches:
                await client.put_many(pool_id, batch)

        async def get() -> None:
            for batch_keys in keys:
                await client.get_many(pool_id, batch_keys, free=False)

        dictionary = "-"
        if not pool.persistent:
            trainings = await _trainings(client)
            await put()  # the samples
            deadline = time.monotonic() + TRAIN_TIMEOUT
            while (trained := await _trainings(client)) == trainings:
                assert time.monotonic() < deadline, "no dictionary trained"
                await asyncio.sleep(0.05)
            dictionary = "used" if trained[0] > trainings[0] else "not used"
        put_rate = await awaited_rate(len(pages), put)
        get_rate = await awaited_rate(len(pages), get)
        back = [
            page
            for batch_keys in keys
            for page in await client.get_many(pool_id, batch_keys, free=False)
        ]
        # Pages the store refused (too poorly compressible) are misses; no page comes back wrong.
        assert all(got in (None, page) for got, page in zip(back, pages, strict=True))
        await client.destroy_pool(pool_id)
        return put_rate, get_rate, dictionary


async def _trainings(client: Client) -> tuple[int, int]:
    """Dictionaries the node trained so far: (used, not used: they did not pay off)."""
    stats = await client.stats()
    return stats["zstd_dicts_trained"], stats["zstd_dicts_unhelpful"]


def run(corpus: Corpus) -> dict[str, float]:
    pages = corpus.pages
    density = {p.name: resident_bytes(pages, p.codec, trained=not p.persistent) for p in POOLS}
    with tempfile.TemporaryDirectory(prefix="ramster-bench-") as tmp:
        node, info = start_node(Path(tmp), "bench", "--memory", "2GiB")
        try:
            # The machine is shared: each pool's best of rounds taken in turn, so a busy
            # moment costs every pool alike.
            rates = {p.name: (0.0, 0.0) for p in POOLS}
            used: dict[str, set[str]] = {p.name: set() for p in POOLS}
            for _ in range(ROUNDS):
                for p in POOLS:
                    put, get, dictionary = asyncio.run(_batched(info["address"], pages, p))
                    rates[p.name] = (max(rates[p.name][0], put), max(rates[p.name][1], get))
                    used[p.name].add(dictionary)
        finally:
            node.stop()
    per_page = {name: d["rss_bytes"] / d["pages"] for name, d in density.items()}
    # What the store accounts (pages, slots, dictionaries): beside RSS, which for the pools with
    # dictionaries also holds what malloc kept of the samples and the training.
    accounted = {name: d["accounted_bytes"] / d["pages"] for name, d in density.items()}
    packed = {
        p.name: sum(len(pack_page(page, parse_codec(p.codec)).payload) for page in pages)
        / len(pages)
        for p in POOLS
        if p.persistent
    }
    print_table(
        f"codecs per pool, {len(pages)} corpus pages (bytes: store RSS; rates: a node, "
        f"{BATCH}-page calls; dictionary: trained on the node, used if it paid off)",
        [
            "pool",
            "bytes/page (RSS)",
            "accounted bytes/page",
            "packed bytes/page",
            "put pages/s",
            "get pages/s",
            "dictionary",
        ],
        [
            [
                p.name,
                per_page[p.name],
                accounted[p.name],
                packed.get(p.name, "-"),
                *rates[p.name],
                "/".join(sorted(used[p.name])),
            ]
            for p in POOLS
        ],
    )
    figures = {}
    for prefix, name in (("zstd", "zstd"), ("dict", "zstd+dict")):
        figures[f"{prefix}_bytes_x"] = per_page[name] / per_page["lz4"]
        figures[f"{prefix}_put_x"] = rates[name][0] / rates["lz4"][0]
        figures[f"{prefix}_get_x"] = rates[name][1] / rates["lz4"][1]
    return figures


if __name__ == "__main__":
    targets.run(run(build_corpus(count=16384)), issues=(16,))
