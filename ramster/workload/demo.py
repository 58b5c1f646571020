"""``ramster demo`` (in process, for now): real pages through frontswap and cleancache.

The frontends are created and used before any backend exists, as a kernel boots before a tmem
module loads: their swapon and mounts are remembered, their early stores dropped. Then a zcache
backend registers, the registrations are replayed, and the corpus flows: half of it is swapped
out through frontswap (persistent, must all come back), half is put in cleancache (ephemeral,
may be evicted under the budget). Everything read back is compared with what was written.
"""

from __future__ import annotations

import sys
from typing import TextIO

from ramster.frontends import Cleancache, Frontswap, TmemCleancacheOps, TmemFrontswapOps
from ramster.tmem import Tmem
from ramster.tmem.local import LocalClient
from ramster.units import format_size
from ramster.workload.corpus import build_corpus
from ramster.zcache import ZCache, ZcacheConfig

SWAP_TYPE = 0


def run_demo(pages: int, memory: int, out: TextIO = sys.stdout) -> int:
    """Run the demo; return 0 if every page read back was right and no swap page was lost."""
    corpus = build_corpus(count=pages)
    say = out.write
    say(f"corpus: {corpus!r}\n")
    half = len(corpus.pages) // 2
    swap_pages, file_pages = corpus.pages[:half], corpus.pages[half:]

    frontswap, cleancache = Frontswap(), Cleancache()
    frontswap.init(SWAP_TYPE, nr_pages=len(swap_pages))
    fs = cleancache.init_fs()
    early = sum(
        frontswap.store(SWAP_TYPE, offset, page) for offset, page in enumerate(swap_pages[:64])
    )
    say(f"before the backend: fs got fake pool id {fs}; {early} of 64 early swap stores taken\n")

    store = ZCache(ZcacheConfig(memory=memory))
    tmem = Tmem(store)
    frontswap.register_ops(TmemFrontswapOps(LocalClient(tmem, "frontswap")))
    cleancache.register_ops(TmemCleancacheOps(LocalClient(tmem, "cleancache")))
    say(f"backend registered: {frontswap!r} {cleancache!r}\n")

    swapped = [frontswap.store(SWAP_TYPE, n, page) for n, page in enumerate(swap_pages)]
    for n, page in enumerate(file_pages):
        cleancache.put_page(fs, key=n // 64, index=n % 64, page=page)
    say(f"stored: {store!r}\n")

    wrong = lost = hits = 0
    for n, page in enumerate(swap_pages):
        if swapped[n]:
            loaded = frontswap.load(SWAP_TYPE, n)
            lost += loaded is None
            wrong += loaded is not None and loaded != page
    for n, page in enumerate(file_pages):
        got = cleancache.get_page(fs, key=n // 64, index=n % 64)
        hits += got is not None
        wrong += got is not None and got != page

    stored = sum(swapped)
    raw = stored * 4096
    say(
        f"\nfrontswap: {stored} of {len(swap_pages)} pages taken "
        f"(refused ones stay with the caller), {stored - lost} loaded back, {lost} lost\n"
        f"cleancache: {hits} of {len(file_pages)} pages hit after "
        f"{store.counters()['evicted_eph_zpages']} evictions under a {format_size(memory)} budget\n"
        f"wrong pages: {wrong}; swap pages compressed {format_size(raw)} -> "
        f"{format_size(store.counters()['pers_zbytes_max'])}\n"
    )
    _print_counters(out, "frontswap", frontswap.counters())
    _print_counters(out, "cleancache", cleancache.counters())
    _print_counters(out, "zcache", store.counters())
    _print_counters(out, "tmem", tmem.counters())
    verdict = "OK" if wrong == 0 and lost == 0 else "FAILED"
    say(f"\n{verdict}: {wrong} wrong pages, {lost} lost swap pages\n")
    return 0 if verdict == "OK" else 1


def _print_counters(out: TextIO, title: str, counters: dict[str, int]) -> None:
    out.write(f"\n{title}\n")
    width = max(map(len, counters))
    for name, value in counters.items():
        out.write(f"  {name:<{width}}  {value:>12,}\n")
