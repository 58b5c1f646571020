"""``make bench``: every benchmark section, each beside its reference, in one run."""

from __future__ import annotations

import platform
import time

from ramster.workload.corpus import build_corpus
from tests.bench import budget, cluster, codecs, core, durability, floor, seal, swap, targets, wire


def main() -> None:
    started = time.time()
    corpus = build_corpus(count=16384)
    print(f"# RAMster benchmarks — {platform.python_version()}, {platform.machine()}, {corpus!r}")
    figures = core.run(corpus)
    figures |= codecs.run(corpus)
    seal.run(corpus)
    figures |= wire.run(corpus.pages[:8192])
    figures |= floor.run(corpus.pages[:8192])
    budget.run(corpus.pages[:8192])
    figures |= cluster.run(corpus.pages)
    figures |= durability.run(corpus.pages)
    figures |= swap.run()
    targets.run(figures)
    print(f"\n(total {time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
