"""``ramster demo``: a three-node cluster on loopback, overcommitted through both frontends.

etcd and three nodes start; node 1 gets a small budget. A workload on node 1 swaps out most of a
corpus of real pages through frontswap (persistent: every page taken must come back) and puts the
rest in cleancache (ephemeral: a second chance that may forget). Node 1 runs short and ships
compressed pages to nodes 2 and 3; then everything is read back and compared. A progress bar
shows each phase; a table shows what every node holds. Everything started is stopped at the end,
unless `keep` leaves the cluster up until Ctrl-C. The cluster makes its own CA and serves mTLS
only (`LocalCluster`): the workload calls as the cluster's client, the statistics as its admin.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from ramster.cli.view import console, progress, table
from ramster.client import TLS, Cleancache, Frontswap, SyncClient
from ramster.errors import Unavailable
from ramster.page import compress_page
from ramster.units import format_size
from ramster.workload.corpus import build_corpus
from ramster.zcache import ZcacheConfig
from ramster.zcache.config import MIN_MEMORY

if TYPE_CHECKING:  # the node and etcd (the [node] and [etcd] extras): `run_demo` imports it
    from ramster.launcher import LocalCluster

SWAP_TYPE = 0
STORE_RETRIES = 12
POOR_ZSIZE = ZcacheConfig(memory=MIN_MEMORY).max_zsize_pers


@dataclass
class Outcome:
    swapped: int = 0
    kept_by_app: int = 0
    loaded: int = 0
    lost: int = 0
    cached: int = 0
    hits: int = 0
    wrong: int = 0


def run_demo_on(node: str, pages: int, out: TextIO = sys.stdout, tls: TLS | None = None) -> int:
    """The demo's workload against a node that runs already (Compose, Kubernetes), with `tls`
    if it serves TLS: 0 if some pages were taken, none came back wrong and no swapped page was
    lost."""
    swap_pages, file_pages = _split_corpus(pages, out)
    result = _workload(node, swap_pages, file_pages, out, lambda: None, tls)
    out.write(
        f"frontswap: {result.swapped:,} of {len(swap_pages):,} pages taken, "
        f"{result.loaded:,} loaded back, {result.lost:,} lost; cleancache: {result.hits:,} of "
        f"{len(file_pages):,} hits\n"
    )
    ok = result.swapped > 0 and result.wrong == 0 and result.lost == 0
    out.write(
        f"{'OK' if ok else 'FAILED'}: {result.wrong} wrong pages, {result.lost} lost swap pages\n"
    )
    return 0 if ok else 1


def _split_corpus(pages: int, out: TextIO) -> tuple[list[bytes], list[bytes]]:
    """Three quarters of a corpus for frontswap, the rest for cleancache."""
    corpus = build_corpus(count=pages)
    out.write(f"corpus: {corpus!r}\n")
    swap_pages = corpus.pages[: len(corpus.pages) * 3 // 4]
    return swap_pages, corpus.pages[len(swap_pages) :]


def run_demo(pages: int, memory: int, keep: bool = False, out: TextIO = sys.stdout) -> int:
    """Run the demo; 0 if no page came back wrong and no swapped page was lost."""
    from ramster.launcher import LocalCluster, wait_forever_until_signal  # [node] and [etcd]

    say = out.write
    swap_pages, file_pages = _split_corpus(pages, out)
    with LocalCluster(3, [memory, 8 * memory], cluster="demo") as cluster:
        first = cluster.nodes[0]
        say(f"cluster: etcd {cluster.etcd_url}; ")
        say(", ".join(f"node {n.number} at {n.address}" for n in cluster.nodes))
        say(f"; node {first.number} has {format_size(memory)}, the others 8x that\n")
        snapshot: list[dict[str, int]] = []

        def take_snapshot() -> None:
            snapshot.extend(_stats(node.address, cluster.admin_tls) for node in cluster.nodes)

        result = _workload(
            first.address, swap_pages, file_pages, out, take_snapshot, cluster.client_tls
        )
        final = [_stats(node.address, cluster.admin_tls) for node in cluster.nodes]
        _table(out, cluster, snapshot, final, result, len(swap_pages), len(file_pages))
        verdict = result.wrong == 0 and result.lost == 0
        say(
            f"\n{'OK' if verdict else 'FAILED'}: {result.wrong} wrong pages, "
            f"{result.lost} lost swap pages\n"
        )
        if keep:
            admin = cluster.admin_tls
            say(
                f"\nthe cluster stays up: ramster stats --node {first.address} --tls-ca {admin.ca} "
                f"--tls-cert {admin.cert} --tls-key {admin.key}\n"
                f"                      ramster members --etcd {cluster.etcd_url} --cluster demo "
                f"--etcd-ca {admin.ca} --etcd-cert {admin.cert} --etcd-key {admin.key}\n"
                "Ctrl-C stops it.\n"
            )
            out.flush()
            wait_forever_until_signal()
    return 0 if verdict else 1


def _workload(
    address: str,
    swap: list[bytes],
    files: list[bytes],
    out: TextIO,
    stored: Callable[[], None],
    tls: TLS | None = None,
) -> Outcome:
    """Store everything, call `stored`, read everything back and compare."""
    result = Outcome()
    frontswap = Frontswap(address, "demo-swap", tls=tls)
    cleancache = Cleancache(address, "demo-cache", tls=tls)
    try:
        frontswap.init(SWAP_TYPE, nr_pages=len(swap))
        fs = cleancache.init_fs()
        if not (frontswap.wait_ready(60) and cleancache.wait_ready(60)):
            raise Unavailable(f"the frontends did not attach to the node at {address} in 60 s")
        taken = [False] * len(swap)
        for n, page in progress(out, "swap out (frontswap)", list(enumerate(swap))):
            taken[n] = _store(frontswap, n, page)
        result.swapped = sum(taken)
        result.kept_by_app = len(swap) - result.swapped
        for n, page in progress(out, "page cache (cleancache)", list(enumerate(files))):
            cleancache.put_page(fs, key=n // 64, index=n % 64, page=page)
        result.cached = len(files)
        time.sleep(1.0)  # let node 1 finish shipping before the read-back
        stored()
        for n, page in progress(out, "swap in and verify", list(enumerate(swap))):
            if taken[n]:
                loaded = frontswap.load(SWAP_TYPE, n)
                result.loaded += loaded is not None
                result.lost += loaded is None
                result.wrong += loaded is not None and loaded != page
        for n, page in progress(out, "cache reads and verify", list(enumerate(files))):
            got = cleancache.get_page(fs, key=n // 64, index=n % 64)
            result.hits += got is not None
            result.wrong += got is not None and got != page
    finally:
        frontswap.close()
        cleancache.close()
    return result


def _store(frontswap: Frontswap, offset: int, page: bytes) -> bool:
    """Store, retrying a little while node 1 is full and still shipping pages out (a refused
    store leaves the page with the app, which may offer it again). A page that compresses too
    poorly for zcache is refused whatever the room, so it is offered once."""
    if frontswap.store(SWAP_TYPE, offset, page):
        return True
    if len(compress_page(page)[0]) > POOR_ZSIZE:
        return False
    for attempt in range(STORE_RETRIES):
        time.sleep(0.002 * (attempt + 1))
        if frontswap.store(SWAP_TYPE, offset, page):
            return True
    return False


def _stats(address: str, tls: TLS) -> dict[str, int]:
    with SyncClient(address, client_name="demo-stats", tls=tls) as client:
        return client.stats()


def _table(
    out: TextIO,
    cluster: LocalCluster,
    stats: list[dict[str, int]],
    final: list[dict[str, int]],
    result: Outcome,
    swap_total: int,
    file_total: int,
) -> None:
    def get(s: dict[str, int], *names: str) -> int:
        return sum(s.get(name, 0) for name in names)

    rows = []
    for node, s in zip(cluster.nodes, stats, strict=True):
        held, zbytes = get(s, "eph_zpages", "pers_zpages"), get(s, "eph_zbytes", "pers_zbytes")
        rows.append(
            (
                f"{node.number} {node.name}",
                f"{held:,}",
                format_size(zbytes),
                f"{held * 4096 / max(zbytes, 1):.2f}x",
                f"{get(s, 'eph_pages_remoted', 'pers_pages_remoted'):,}",
                f"{get(s, 'foreign_eph_pages', 'foreign_pers_pages'):,}",
                format_size(get(s, "memory_bytes")),
            )
        )
    header = (
        "node",
        "pages held",
        "compressed",
        "ratio",
        "shipped out",
        "held for peers",
        "budget",
    )
    out.write("\n")
    console(out).print(table(header, rows, title="once everything was stored:"))
    first = final[0]
    out.write(
        f"\nfrontswap: {result.swapped:,} of {swap_total:,} pages taken "
        f"({result.kept_by_app:,} kept by the app), {result.loaded:,} loaded back, "
        f"{result.lost:,} lost\n"
        f"cleancache: {result.hits:,} of {file_total:,} hits "
        f"({100 * result.hits / max(file_total, 1):.0f}%) after "
        f"{get(first, 'evicted_eph_zpages'):,} evictions and "
        f"{get(first, 'eph_pages_remoted'):,} shipped to peers\n"
        f"remote gets on node 1: {get(first, 'remote_pers_pages_succ_get'):,} swap pages and "
        f"{get(first, 'remote_eph_pages_succ_get'):,} cache pages came back from peers\n"
        f"wrong pages: {result.wrong}\n"
    )
