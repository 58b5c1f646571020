"""Client -> node figures over loopback gRPC, beside redis-py + Redis and pymemcache + memcached.

Targets (DESIGN §12): 64-page batched put >= 1.0 x redis-py MSET of 64; batched get >= 0.8 x
MGET of 64; single-page get p50 <= 0.7 ms (p99 <= 1.5 ms); 64 concurrent single-page gets through
the coalescing client >= 0.5 x the batched get rate.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from ramster.client import Client
from tests.bench.references import (
    BATCH,
    ReferenceFigures,
    latency_ms,
    measure_memcached,
    measure_redis,
    reference_servers,
)
from tests.bench.table import print_table, verdict
from tests.support.nodes import start_node

CONCURRENT = 64


async def _rate(pages: int, work: object, min_seconds: float = 1.0) -> float:
    await work()  # type: ignore[operator]
    runs, start = 0, time.perf_counter()
    while True:
        await work()  # type: ignore[operator]
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return pages * runs / elapsed


async def _measure_ramster(address: str, pages: list[bytes]) -> tuple[ReferenceFigures, float]:
    async with Client(address, client_name="bench") as client:
        pool = await client.new_pool(persistent=True)
        items = [(n >> 8, n & 0xFF, page) for n, page in enumerate(pages)]
        batches = [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
        keys = [[(oid, index) for oid, index, _ in batch] for batch in batches]

        async def put() -> None:
            for batch in batches:
                await client.put_many(pool, batch)

        async def get() -> None:
            for batch_keys in keys:
                await client.get_many(pool, batch_keys)

        put_rate = await _rate(len(pages), put)
        get_rate = await _rate(len(pages), get)
        flat = [key for batch_keys in keys for key in batch_keys]
        samples = []
        for n in range(2000):
            oid, index = flat[n % len(flat)]
            start = time.perf_counter()
            await client.get(pool, oid, index)
            samples.append(time.perf_counter() - start)
        p50, p99 = latency_ms(samples)

        async def concurrent_gets() -> None:
            for i in range(0, len(flat), CONCURRENT):
                chunk = flat[i : i + CONCURRENT]
                await asyncio.gather(*(client.get(pool, oid, index) for oid, index in chunk))

        coalesced = await _rate(len(flat), concurrent_gets)
        figures = ReferenceFigures("ramster Client + node", put_rate, get_rate, p50, p99)
        return figures, coalesced


def run(pages: list[bytes]) -> None:
    with tempfile.TemporaryDirectory(prefix="ramster-bench-") as tmp:
        workdir = Path(tmp)
        with reference_servers(workdir) as (redis_port, memcached_port):
            redis_figures = measure_redis(redis_port, pages)
            memcached_figures = measure_memcached(memcached_port, pages)
        node, info = start_node(workdir, "bench", "--memory", "1GiB")
        try:
            ours, coalesced = asyncio.run(_measure_ramster(info["address"], pages))
        finally:
            node.stop()
    rows = [
        [f.name, f.put_rate, f.get_rate, f"{f.get_p50_ms:.3f}", f"{f.get_p99_ms:.3f}"]
        for f in (ours, redis_figures, memcached_figures)
    ]
    print_table(
        f"client -> node over loopback, {len(pages)} pages, {BATCH}-page batches",
        ["client + server", "put pages/s", "get pages/s", "get p50 ms", "get p99 ms"],
        rows,
    )
    put_x = ours.put_rate / redis_figures.put_rate
    get_x = ours.get_rate / redis_figures.get_rate
    co_x = coalesced / ours.get_rate
    print_table(
        "targets (DESIGN §12)",
        ["what", "measured", "target", "verdict"],
        [
            ["batched put vs redis MSET", f"{put_x:.2f}x", ">= 1.0x", verdict(put_x >= 1.0)],
            ["batched get vs redis MGET", f"{get_x:.2f}x", ">= 0.8x", verdict(get_x >= 0.8)],
            [
                "single get p50",
                f"{ours.get_p50_ms:.3f} ms",
                "<= 0.7 ms",
                verdict(ours.get_p50_ms <= 0.7),
            ],
            [
                "single get p99",
                f"{ours.get_p99_ms:.3f} ms",
                "<= 1.5 ms",
                verdict(ours.get_p99_ms <= 1.5),
            ],
            [
                f"{CONCURRENT} concurrent single gets (coalesced)",
                f"{coalesced:,.0f} pages/s = {co_x:.2f}x batched",
                ">= 0.5x",
                verdict(co_x >= 0.5),
            ],
        ],
    )
