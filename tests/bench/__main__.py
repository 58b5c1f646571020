"""``make bench``: every benchmark section, each beside its reference, in one run."""

from __future__ import annotations

import platform
import time

from ramster.workload.corpus import build_corpus
from tests.bench import budget, cluster, core, durability, floor, seal, swap, wire


def main() -> None:
    started = time.time()
    corpus = build_corpus(count=16384)
    print(f"# RAMster benchmarks — {platform.python_version()}, {platform.machine()}, {corpus!r}")
    core.run(corpus)
    seal.run(corpus)
    wire.run(corpus.pages[:8192])
    floor.run(corpus.pages[:8192])
    budget.run(corpus.pages[:8192])
    cluster.run(corpus.pages)
    durability.run(corpus.pages)
    swap.run()
    print(f"\n(total {time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
