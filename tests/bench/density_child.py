"""Child process of the density benchmark: store a corpus file page by page, report real memory.

Run as ``python -m tests.bench.density_child CORPUS_FILE [CODEC [trained]]`` (CODEC: the pool's,
as `ramster.page.parse_codec` reads it; default lz4; ``trained``: an ephemeral pool, whose
dictionary is trained as soon as it is due); prints one JSON line. Pages are read one at a
time so the resident set grows only by what the store keeps.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor

from ramster.page import parse_codec
from ramster.pinning import fix_mmap_threshold, give_back_free_heap
from ramster.tmem import PageTable, PoolSpec, Stored, Tmem
from ramster.zcache import ZCache, ZcacheConfig
from ramster.zcache.dictionaries import train

PAGE = 4096


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main(path: str, codec: str = "lz4", trained: str = "") -> None:
    fix_mmap_threshold()  # as a node does
    store = ZCache(ZcacheConfig(memory=8 * 2**30))
    tmem = Tmem(PageTable(store))
    spec = PoolSpec(persistent=not trained, codec=parse_codec(codec))
    pool = tmem.new_pool("bench", spec)
    uid = tmem.pool_uid("bench", pool)
    gc.collect()
    before = resident_bytes()
    stored = 0
    with open(path, "rb", buffering=0) as corpus:
        n = 0
        while page := corpus.read(PAGE):
            outcome = tmem.put("bench", pool, n >> 8, n & 0xFF, page)
            stored += isinstance(outcome, Stored)
            training = store.dictionaries.due(uid, spec.codec.level) if trained else None
            if training is not None:  # in a thread, as the node trains (its own malloc arena)
                with ThreadPoolExecutor(1) as thread:
                    store.dictionaries.install(training, thread.submit(train, training).result())
                give_back_free_heap()
            n += 1
    gc.collect()
    print(
        json.dumps(
            {
                "pages": stored,
                "rss_bytes": resident_bytes() - before,
                "accounted_bytes": store.used_bytes,
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:4])
