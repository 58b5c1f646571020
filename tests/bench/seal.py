"""In-process figures: the page seal (AES-256-GCM, `ramster.trust.seal`) on lz4-packed pages,
beside lz4 alone, the work every page already pays for.

Pages are sealed and opened as shipping does (`OriginSeal`: the associated data of each page's
place, its encoding inside), and opened as a get's answer is (`open_all`: a batch of slices of
the answer's bytes). No target here: issue 12 asks that sealed remote pages cost at most
15 % of put and get over the wire, which tests/bench/cluster.py shows.
"""

from __future__ import annotations

import itertools
import os

from lz4.block import compress, decompress

from ramster.page import PackedPage
from ramster.tmem.keys import PageVersion
from ramster.trust.seal import OriginSeal
from ramster.workload.corpus import Corpus
from tests.bench.references import BATCH
from tests.bench.table import print_table, rate


def run(corpus: Corpus) -> None:
    pages = corpus.pages
    n = len(pages)
    seal = OriginSeal("bench-node", os.urandom(32))
    packed = [compress(page, store_size=False) for page in pages]
    places = [PageVersion(1, (i >> 8, 0, 0), i & 0xFF, 1) for i in range(n)]
    sealed = [
        seal.seal(at, PackedPage(blob, False, 4096))
        for at, blob in zip(places, packed, strict=True)
    ]

    def lz4_compress() -> None:
        for page in pages:
            compress(page, store_size=False)

    def lz4_decompress() -> None:
        for blob in packed:
            decompress(blob, uncompressed_size=4096)

    def seal_pages() -> None:
        for at, blob in zip(places, packed, strict=True):
            seal.seal(at, PackedPage(blob, False, 4096))

    def open_pages() -> None:
        for at, box in zip(places, sealed, strict=True):
            seal.open(at, box, 4096)

    view = memoryview(b"".join(sealed))
    ends = list(itertools.accumulate(map(len, sealed)))
    answers = [
        (at.pool_uid, at.oid, at.index, at.version, 4096, view[end - len(box) : end])
        for at, box, end in zip(places, sealed, ends, strict=True)
    ]

    def open_batches() -> None:
        for start in range(0, n, BATCH):
            seal.open_all(answers[start : start + BATCH])

    def compress_and_seal() -> None:
        for at, page in zip(places, pages, strict=True):
            seal.seal(at, PackedPage(compress(page, store_size=False), False, 4096))

    def open_and_decompress() -> None:
        for at, box in zip(places, sealed, strict=True):
            decompress(seal.open(at, box, 4096).payload, uncompressed_size=4096)

    compress_rate, decompress_rate = rate(n, lz4_compress), rate(n, lz4_decompress)
    rows = []
    for name, work, reference in (
        ("seal (aad + AES-GCM)", seal_pages, compress_rate),
        ("open (aad + AES-GCM)", open_pages, decompress_rate),
        (f"open_all, {BATCH}-page batches of a get's answer", open_batches, decompress_rate),
        ("lz4 compress + seal", compress_and_seal, compress_rate),
        ("open + lz4 decompress", open_and_decompress, decompress_rate),
    ):
        measured = rate(n, work)
        rows.append([name, measured, reference, f"{measured / reference:.2f}x"])
    mean = sum(map(len, packed)) / n
    print_table(
        f"page seal in process, {n} lz4-packed corpus pages of {mean:,.0f} bytes on average "
        "(sealing beside lz4 compress, opening beside decompress)",
        ["operation", "pages/s", "reference (lz4 alone)", "ratio"],
        rows,
    )
