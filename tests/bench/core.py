"""In-process figures: zcache put/get in 64-page batches beside plain lz4, and density.

Targets (issue 2, docs/design.md §12): put >= 0.5 x the lz4 compress rate; bytes per stored page
<= 1.05 x the ideal lz4 size (issue 14; docs/design.md §12 had 1.10), measured as the process's real
memory (resident set).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import tracemalloc

from lz4.block import compress, decompress

from ramster.tmem import PageTable, PoolSpec, Tmem
from ramster.workload.corpus import Corpus
from ramster.zcache import ZCache, ZcacheConfig
from tests.bench.table import print_table, rate, verdict

BATCH = 64


def _batches(pages: list[bytes]) -> list[list[tuple[int, int, bytes]]]:
    keyed = [(n >> 8, n & 0xFF, page) for n, page in enumerate(pages)]
    return [keyed[i : i + BATCH] for i in range(0, len(keyed), BATCH)]


def _fresh_host() -> tuple[Tmem, int]:
    tmem = Tmem(PageTable(ZCache(ZcacheConfig(memory=8 * 2**30))))
    return tmem, tmem.new_pool("bench", PoolSpec(persistent=True))


def run(corpus: Corpus) -> dict[str, float]:
    pages = corpus.pages
    n = len(pages)
    packed = [compress(p, store_size=False) for p in pages]
    ideal = sum(map(len, packed)) / n

    def lz4_compress() -> None:
        for page in pages:
            compress(page, store_size=False)

    def lz4_decompress() -> None:
        for blob in packed:
            decompress(blob, uncompressed_size=4096)

    batches = _batches(pages)

    def zcache_put() -> None:
        tmem, pool = _fresh_host()
        for batch in batches:
            tmem.put_many("bench", pool, batch)

    tmem, pool = _fresh_host()
    for batch in batches:
        tmem.put_many("bench", pool, batch)
    keys = [[(oid, index) for oid, index, _ in batch] for batch in batches]

    def zcache_get() -> None:
        for batch in keys:
            tmem.get_many("bench", pool, batch)

    compress_rate, decompress_rate = rate(n, lz4_compress), rate(n, lz4_decompress)
    put_rate, get_rate = rate(n, zcache_put), rate(n, zcache_get)
    print_table(
        f"zcache in process, {n} corpus pages, {BATCH}-page batches",
        ["operation", "pages/s", "reference (lz4 alone)", "ratio", "target", "verdict"],
        [
            [
                "put_many (compress+admit+index)",
                put_rate,
                compress_rate,
                f"{put_rate / compress_rate:.2f}x",
                ">= 0.50x",
                verdict(put_rate >= 0.5 * compress_rate),
            ],
            [
                "get_many (lookup+decompress)",
                get_rate,
                decompress_rate,
                f"{get_rate / decompress_rate:.2f}x",
                "-",
                "-",
            ],
        ],
    )

    traced = _traced_bytes(batches)
    child = resident_bytes(pages)
    accounted = child["accounted_bytes"] / child["pages"]
    resident = child["rss_bytes"] / child["pages"]
    print_table(
        f"bytes per stored page, {n} pages (ideal = mean lz4 block size)",
        ["measure", "bytes/page", "x ideal", "target", "verdict"],
        [
            ["ideal lz4 size", ideal, "1.00x", "-", "-"],
            ["accounted by ZCache (budget)", accounted, f"{accounted / ideal:.3f}x", "-", "-"],
            ["Python heap (tracemalloc)", traced, f"{traced / ideal:.3f}x", "-", "-"],
            [
                "process resident set (RSS)",
                resident,
                f"{resident / ideal:.3f}x",
                "<= 1.05x",
                verdict(resident <= 1.05 * ideal),
            ],
        ],
    )
    return {"rss_x_ideal": resident / ideal}


def _traced_bytes(batches: list[list[tuple[int, int, bytes]]]) -> float:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tmem, pool = _fresh_host()
    for batch in batches:
        tmem.put_many("bench", pool, batch)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return used / sum(map(len, batches))


def resident_bytes(pages: list[bytes], codec: str = "lz4", trained: bool = False) -> dict[str, int]:
    """What a store of one pool packed with `codec` holding `pages` takes, measured in a child
    process (`tests.bench.density_child`); `trained`: an ephemeral pool, packed with the
    dictionary trained on its first pages."""
    with tempfile.NamedTemporaryFile(prefix="ramster-corpus-") as corpus_file:
        corpus_file.write(b"".join(pages))
        corpus_file.flush()
        out = subprocess.run(
            [sys.executable, "-m", "tests.bench.density_child", corpus_file.name, codec]
            + (["trained"] if trained else []),
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    result: dict[str, int] = json.loads(out)
    return result
