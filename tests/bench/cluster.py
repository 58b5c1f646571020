"""Remote pages, over loopback: how fast a node ships pages to a peer, and what a get of a
remote page costs beside a local one (issue 4). Targets (issue 14): remotify >= 60k pages/s,
batched gets of remote pages >= 0.7 x local ones.

Node 1 (one copy of each page) fills its whole budget with `ramster` off (nothing ships), then
`ramster` goes on: it ships from 100 % down to the low watermark (80 %). The rate is pages shipped
over the wall-clock time until the node reached its low watermark; beside it, pages over the
summed time of the batches (the node's `remotify_busy_microseconds`), which counts overlapping
batches twice. The local cluster runs as `make run` does: mTLS, and every shipped page sealed
under its origin's page key (issue 12); the bench calls as the cluster's admin. The same
measures on a plaintext cluster (no TLS, pages shipped unsealed) in the same run show what
TLS and sealing cost: target at most 15 % slower (issue 12).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from lz4.block import compress

from ramster.client import TLS, Client
from ramster.launcher import LocalCluster
from tests.bench.references import BATCH
from tests.bench.table import awaited_rate, print_table, verdict

MEMORY = 96 * 2**20


async def _fill(client: Client, pool: int, pages: list[bytes]) -> int:
    """Store pages (cycling through the corpus under new keys) until the node refuses one for
    want of room; return how many keys were stored. Only pages zcache admits are offered."""
    n = 0
    while True:
        batch = [((n + i) >> 8, (n + i) & 0xFF, pages[(n + i) % len(pages)]) for i in range(BATCH)]
        stored = await client.put_many(pool, batch)
        n += sum(stored)
        if not all(stored):
            return n


async def _measure(address: str, tls: TLS | None, pages: list[bytes]) -> dict[str, float]:
    async with Client(address, client_name="bench-cluster", tls=tls) as client:
        # One copy: with two nodes a second copy would leave node 1 nowhere to ship (the cost
        # of copies is measured by tests/bench/durability.py).
        await client.set_param("persistent_copies", "1")
        await client.set_param("ramster", "off")
        pool = await client.new_pool(persistent=True)
        stored = await _fill(client, pool, pages)
        before = await client.stats()
        start = time.perf_counter()
        await client.set_param("ramster", "on")
        while True:
            stats = await client.stats()
            if stats["used_bytes"] <= 0.8 * MEMORY and stats["pers_pages_remoted"] > 0:
                break
            if time.perf_counter() - start > 120:
                raise TimeoutError(f"node 1 did not reach its low watermark in 120 s: {stats}")
            await asyncio.sleep(0.005)
        wall = time.perf_counter() - start
        shipped = stats["pers_pages_remoted"] - before.get("pers_pages_remoted", 0)
        busy_us = stats["remotify_busy_microseconds"] - before.get("remotify_busy_microseconds", 0)
        busy = busy_us / 1e6
        # The oldest keys were shipped first: the first `shipped` keys are remote.
        remote_keys = [(n >> 8, n & 0xFF) for n in range(min(shipped, 4096))]
        local_keys = [(n >> 8, n & 0xFF) for n in range(stored - min(shipped, 4096), stored)]

        def getter(keys: list[tuple[int, int]]) -> Callable[[], Awaitable[None]]:
            batches = [keys[i : i + BATCH] for i in range(0, len(keys), BATCH)]

            async def get_all() -> None:
                for batch in batches:
                    await client.get_many(pool, batch, free=False)

            return get_all

        remote_rate = await awaited_rate(len(remote_keys), getter(remote_keys))
        local_rate = await awaited_rate(len(local_keys), getter(local_keys))
        return {
            "stored": stored,
            "shipped": shipped,
            "busy": busy,
            "wall": wall,
            "remote_rate": remote_rate,
            "local_rate": local_rate,
        }


def _measure_cluster(pages: list[bytes], plaintext: bool) -> dict[str, float]:
    with (
        tempfile.TemporaryDirectory(prefix="ramster-bench-") as tmp,
        LocalCluster(
            2, [MEMORY, 16 * MEMORY], cluster="bench", directory=Path(tmp), plaintext=plaintext
        ) as cluster,
    ):
        tls = None if plaintext else cluster.admin_tls
        figures = asyncio.run(_measure(cluster.nodes[0].address, tls, pages))
    figures["wall_rate"] = figures["shipped"] / max(figures["wall"], 1e-9)
    figures["busy_rate"] = figures["shipped"] / max(figures["busy"], 1e-9)
    return figures


def run(pages: list[bytes]) -> dict[str, float]:
    limit = 3 * 4096 // 4  # well under max_zsize_pers and max_mean_zsize: never refused for size
    pages = [page for page in pages if len(compress(page, store_size=False)) <= limit]
    plain = _measure_cluster(pages, plaintext=True)
    sealed = _measure_cluster(pages, plaintext=False)
    print_table(
        f"remotify: node 1 ({MEMORY >> 20} MiB, full) ships to node 2 down to its low watermark "
        "(mTLS, pages sealed)",
        ["measure", "value", "target", "verdict"],
        [
            ["pages stored on node 1", f"{sealed['stored']:,.0f}", "-", "-"],
            ["pages shipped", f"{sealed['shipped']:,.0f}", "-", "-"],
            [
                "remotify rate: ramster on -> low watermark, wall clock",
                f"{sealed['wall_rate']:,.0f} pages/s",
                ">= 60,000",
                verdict(sealed["wall_rate"] >= 60_000),
            ],
            [
                "pages over summed batch times (2 batches overlap)",
                f"{sealed['busy_rate']:,.0f} pages/s",
                "-",
                "-",
            ],
        ],
    )
    print_table(
        f"batched get ({BATCH} pages, keep) of remote pages beside local ones, on node 1 (mTLS)",
        ["pages", "pages/s", "x local"],
        [
            ["local", sealed["local_rate"], "1.00x"],
            [
                "remote (on node 2)",
                sealed["remote_rate"],
                f"{sealed['remote_rate'] / sealed['local_rate']:.2f}x",
            ],
        ],
    )
    rows = []
    for name, key in (
        ("remotify, wall clock", "wall_rate"),
        ("batched get of local pages", "local_rate"),
        ("batched get of remote pages", "remote_rate"),
    ):
        ratio = sealed[key] / plain[key]
        rows.append(
            [name, plain[key], sealed[key], f"{ratio:.2f}x", ">= 0.85x", verdict(ratio >= 0.85)]
        )
    print_table(
        "remote pages: plaintext (no TLS, unsealed) beside mTLS with sealed pages, same run",
        ["pages/s", "plaintext", "mTLS + sealed", "x plaintext", "target", "verdict"],
        rows,
    )
    return {
        "remotify_rate": sealed["wall_rate"],
        "remote_x_local": sealed["remote_rate"] / sealed["local_rate"],
    }
