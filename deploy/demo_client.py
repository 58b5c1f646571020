#!/usr/bin/env python3
"""``ramster-demo-client``: overcommit one node of a running cluster and verify every page.

The Compose file's ``demo`` service runs it against node1 (the image installs this file as
``/opt/ramster/bin/ramster-demo-client``). Like ``ramster demo``, it swaps three quarters of a
corpus of real pages out through frontswap and puts the rest in cleancache; the node, short of
memory, ships compressed pages to its peers; then everything is read back and compared. It exits
0 only if some pages were taken, none came back wrong and no swapped page was lost. Not here:
starting the cluster (`ramster demo` does that on loopback, Compose and Kubernetes elsewhere).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass

from ramster.client import Cleancache, Frontswap, SyncClient
from ramster.workload.corpus import build_corpus
from ramster.zcache import ZcacheConfig
from ramster.zcache.codec import compress_page
from ramster.zcache.config import MIN_MEMORY

DESCRIPTION = "Overcommit one node of a running cluster and verify every page."
SWAP_TYPE = 0
STORE_RETRIES = 12
POOR_ZSIZE = ZcacheConfig(memory=MIN_MEMORY).max_zsize_pers
"""A page compressing above this is refused whatever the room: offered once, kept if refused."""


@dataclass
class Outcome:
    taken: int = 0
    kept_by_app: int = 0
    loaded: int = 0
    lost: int = 0
    hits: int = 0
    wrong: int = 0

    @property
    def ok(self) -> bool:
        return self.taken > 0 and self.wrong == 0 and self.lost == 0


def run(node: str, pages: int, wait: float) -> Outcome:
    corpus = build_corpus(count=pages)
    swap = corpus.pages[: len(corpus.pages) * 3 // 4]
    files = corpus.pages[len(swap) :]
    print(f"corpus: {corpus!r}; node {node}", flush=True)
    result = Outcome()
    frontswap, cleancache = Frontswap(node, "demo-swap"), Cleancache(node, "demo-cache")
    try:
        frontswap.init(SWAP_TYPE, nr_pages=len(swap))
        fs = cleancache.init_fs()
        if not (frontswap.wait_ready(wait) and cleancache.wait_ready(wait)):
            raise SystemExit(f"the frontends did not attach to {node} within {wait} s")
        taken = [_store(frontswap, offset, page) for offset, page in enumerate(swap)]
        result.taken = sum(taken)
        result.kept_by_app = len(swap) - result.taken
        for n, page in enumerate(files):
            cleancache.put_page(fs, key=n // 64, index=n % 64, page=page)
        print(f"stored: {result.taken} swap pages, {len(files)} cache pages", flush=True)
        time.sleep(1.0)  # let the node finish shipping before the read-back
        for offset, page in enumerate(swap):
            if taken[offset]:
                loaded = frontswap.load(SWAP_TYPE, offset)
                result.loaded += loaded is not None
                result.lost += loaded is None
                result.wrong += loaded is not None and loaded != page
        for n, page in enumerate(files):
            got = cleancache.get_page(fs, key=n // 64, index=n % 64)
            result.hits += got is not None
            result.wrong += got is not None and got != page
    finally:
        frontswap.close()
        cleancache.close()
    with SyncClient(node, client_name="demo-stats") as client:
        stats = client.stats()
    shipped = stats.get("eph_pages_remoted", 0) + stats.get("pers_pages_remoted", 0)
    print(
        f"frontswap: {result.taken} of {len(swap)} pages taken ({result.kept_by_app} kept by the "
        f"app), {result.loaded} loaded back, {result.lost} lost\n"
        f"cleancache: {result.hits} of {len(files)} hits\n"
        f"node: {shipped} pages shipped to peers, "
        f"{stats.get('remote_pers_pages_succ_get', 0)} swap pages and "
        f"{stats.get('remote_eph_pages_succ_get', 0)} cache pages fetched back",
        flush=True,
    )
    return result


def _store(frontswap: Frontswap, offset: int, page: bytes) -> bool:
    """Store, retrying a little while the node is full and still shipping pages out."""
    if frontswap.store(SWAP_TYPE, offset, page):
        return True
    if len(compress_page(page)[0]) > POOR_ZSIZE:
        return False
    for attempt in range(STORE_RETRIES):
        time.sleep(0.002 * (attempt + 1))
        if frontswap.store(SWAP_TYPE, offset, page):
            return True
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ramster-demo-client", description=DESCRIPTION)
    parser.add_argument(
        "--node",
        default=os.environ.get("RAMSTER_NODE", "127.0.0.1:7470"),
        help="the node to overcommit [RAMSTER_NODE, 127.0.0.1:7470]",
    )
    parser.add_argument("--pages", type=int, default=4096, help="corpus pages (default 4096)")
    parser.add_argument(
        "--wait", type=float, default=60.0, help="seconds to wait for the node (default 60)"
    )
    args = parser.parse_args(argv)
    result = run(args.node, args.pages, args.wait)
    verdict = "OK" if result.ok else "FAILED"
    print(f"{verdict}: {result.wrong} wrong pages, {result.lost} lost swap pages", flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
