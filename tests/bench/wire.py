"""Client -> node figures over loopback gRPC, beside redis-py + Redis and pymemcache + memcached.

Targets here: single-page get p99 <= 1.5 ms (docs/design.md §12); put and get over mTLS (a node with
``--tls-*``, the client with its certificate) at most 15 % slower than plaintext (issue 12): two
fresh nodes, one plaintext and one mTLS, each given the same 64-page puts and gets in turn
(`tests.bench.table.interleaved_rates`), compared round by round (the median of the ratios).
The figures issue 14 sets targets on are returned for `tests.bench.targets`: 64-page put and get
against redis-py MSET/MGET of 64, 64 concurrent single-page gets through the coalescing client
against the batched get rate, and bulk `put_many`/`get_many` of 256k pages (pipelined:
`ramster.client._pipeline.WINDOW` messages in flight) against redis-py pipelining MSET/MGET of
64, with as many commands in flight and with as many pages in flight.
"""

from __future__ import annotations

import asyncio
import datetime
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from ramster.client import TLS, Client
from ramster.client._pipeline import WINDOW, chunk_length
from ramster.trust.files import init_ca, issue
from ramster.trust.identity import Identity, Role
from tests.bench.references import (
    BATCH,
    ReferenceFigures,
    latency_ms,
    measure_memcached,
    measure_redis,
    measure_redis_pipelined,
    reference_servers,
)
from tests.bench.table import (
    ROUNDS,
    Rates,
    awaited_rate,
    interleaved_rates,
    print_table,
    verdict,
)
from tests.support.nodes import start_node

CONCURRENT = 64
BULK = 256 * 1024
"""Pages of one bulk call: the corpus pages over and over, each under its own key."""


Work = Callable[[], Awaitable[None]]


async def _batched(
    client: Client, pages: list[bytes]
) -> tuple[int, Work, Work, list[tuple[int, int]]]:
    """(pool, put, get, keys): a new pool of `client`, a put of `pages` in it and a get of them,
    each in `BATCH`-page calls one at a time, and their keys."""
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

    return pool, put, get, [key for batch_keys in keys for key in batch_keys]


async def _measure_ramster(
    address: str, pages: list[bytes], name: str = "ramster Client + node", tls: TLS | None = None
) -> tuple[ReferenceFigures, float]:
    async with Client(address, client_name="bench", tls=tls) as client:
        pool, put, get, flat = await _batched(client, pages)
        put_rate = await awaited_rate(len(pages), put)
        get_rate = await awaited_rate(len(pages), get)
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

        coalesced = await awaited_rate(len(flat), concurrent_gets)
        figures = ReferenceFigures(name, put_rate, get_rate, p50, p99)
        return figures, coalesced


async def _measure_bulk(address: str, pages: list[bytes]) -> tuple[float, float]:
    """(put, get) pages/s of one `put_many` and one `get_many` of every page in `pages`."""
    async with Client(address, client_name="bench-bulk") as client:
        pool = await client.new_pool(persistent=True)
        items = [(n >> 16, n & 0xFFFF, page) for n, page in enumerate(pages)]
        keys = [(oid, index) for oid, index, _ in items]

        async def put() -> None:
            await client.put_many(pool, items)

        async def get() -> None:
            await client.get_many(pool, keys)

        return await awaited_rate(len(pages), put), await awaited_rate(len(pages), get)


async def _tls_beside_plaintext(
    plaintext: str, over_tls: str, tls: TLS, pages: list[bytes]
) -> dict[str, dict[str, Rates]]:
    """Batched put and get rates of the node at `plaintext` and of the one at `over_tls`,
    measured in turn: {"put": {"plaintext": ..., "mTLS": ...}, "get": {...}}."""
    async with (
        Client(plaintext, client_name="bench") as plain_client,
        Client(over_tls, client_name="bench", tls=tls) as tls_client,
    ):
        _, plain_put, plain_get, _ = await _batched(plain_client, pages)
        _, tls_put, tls_get, _ = await _batched(tls_client, pages)
        puts = await interleaved_rates(len(pages), {"plaintext": plain_put, "mTLS": tls_put})
        gets = await interleaved_rates(len(pages), {"plaintext": plain_get, "mTLS": tls_get})
        return {"put": puts, "get": gets}


def run(pages: list[bytes]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="ramster-bench-") as tmp:
        workdir = Path(tmp)
        with reference_servers(workdir) as (redis_port, memcached_port):
            redis_figures = measure_redis(redis_port, pages)
            memcached_figures = measure_memcached(memcached_port, pages)
            bulk = [pages[n % len(pages)] for n in range(BULK)]
            # As many MSETs in flight as RAMster has messages, then as many pages.
            pages_in_flight = WINDOW * chunk_length(len(pages[0]))
            redis_bulk = {
                depth: measure_redis_pipelined(redis_port, bulk, depth)
                for depth in (WINDOW, pages_in_flight // BATCH)
            }
        node, info = start_node(workdir, "bench", "--memory", "2GiB")
        try:
            ours, coalesced = asyncio.run(_measure_ramster(info["address"], pages))
            bulk_put, bulk_get = asyncio.run(_measure_bulk(info["address"], bulk))
        finally:
            node.stop()
        served, client_tls = _certificates(workdir / "pki")
        plain_node, plain_info = start_node(workdir, "bench-plain", "--memory", "1GiB")
        node, info = start_node(workdir, "bench-tls", "--memory", "1GiB", *served)
        try:
            beside = asyncio.run(
                _tls_beside_plaintext(plain_info["address"], info["address"], client_tls, pages)
            )
            over_tls, _ = asyncio.run(
                _measure_ramster(info["address"], pages, "ramster Client + node, mTLS", client_tls)
            )
        finally:
            node.stop()
            plain_node.stop()
    rows = [
        [f.name, f.put_rate, f.get_rate, f"{f.get_p50_ms:.3f}", f"{f.get_p99_ms:.3f}"]
        for f in (ours, over_tls, redis_figures, memcached_figures)
    ]
    print_table(
        f"client -> node over loopback, {len(pages)} pages, {BATCH}-page batches",
        ["client + server", "put pages/s", "get pages/s", "get p50 ms", "get p99 ms"],
        rows,
    )
    print_table(
        f"bulk over loopback, one call of {BULK:,} pages",
        ["client + server", "in flight", "put pages/s", "get pages/s"],
        [
            ["ramster put_many/get_many", f"{WINDOW} messages", bulk_put, bulk_get],
            *[
                [f"redis-py pipelined MSET/MGET of {BATCH}", f"{depth} commands", put, get]
                for depth, (put, get) in redis_bulk.items()
            ],
        ],
    )
    print_table(
        f"mTLS beside plaintext: {BATCH}-page calls of {len(pages)} pages to two fresh nodes in "
        f"turn, {ROUNDS} rounds (x plaintext: the median of the rounds' ratios)",
        [
            "pages/s",
            "plaintext median",
            "mTLS median",
            "x plaintext",
            "plaintext best",
            "mTLS best",
        ],
        [
            [
                f"batched {what}",
                rates["plaintext"].median,
                rates["mTLS"].median,
                f"{rates['mTLS'].beside(rates['plaintext']):.2f}x",
                rates["plaintext"].best,
                rates["mTLS"].best,
            ]
            for what, rates in beside.items()
        ],
    )
    tls_put_x = beside["put"]["mTLS"].beside(beside["put"]["plaintext"])
    tls_get_x = beside["get"]["mTLS"].beside(beside["get"]["plaintext"])
    print_table(
        "targets (docs/design.md §12, issue 12)",
        ["what", "measured", "target", "verdict"],
        [
            [
                "single get p99",
                f"{ours.get_p99_ms:.3f} ms",
                "<= 1.5 ms",
                verdict(ours.get_p99_ms <= 1.5),
            ],
            [
                "batched put, mTLS vs plaintext",
                f"{tls_put_x:.2f}x",
                ">= 0.85x",
                verdict(tls_put_x >= 0.85),
            ],
            [
                "batched get, mTLS vs plaintext",
                f"{tls_get_x:.2f}x",
                ">= 0.85x",
                verdict(tls_get_x >= 0.85),
            ],
        ],
    )
    return {
        "put_x_mset": ours.put_rate / redis_figures.put_rate,
        "get_x_mget": ours.get_rate / redis_figures.get_rate,
        "coalesced_x": coalesced / ours.get_rate,
        "bulk_put_x": bulk_put / max(put for put, _ in redis_bulk.values()),
        "bulk_get_x": bulk_get / max(get for _, get in redis_bulk.values()),
    }


def _certificates(folder: Path) -> tuple[tuple[str, ...], TLS]:
    """A cluster CA in `folder`, the node's ``--tls-*`` flags and the client's `TLS`."""
    now = datetime.datetime.now(datetime.UTC)
    init_ca(folder, now=now)
    issue(folder, Identity(Role.NODE, "bench-tls"), now=now)
    issue(folder, Identity(Role.CLIENT, "bench"), now=now)
    node = TLS(folder / "ca.crt", folder / "bench-tls.crt", folder / "bench-tls.key")
    flags = ("--tls-ca", str(node.ca), "--tls-cert", str(node.cert), "--tls-key", str(node.key))
    return flags, TLS(folder / "ca.crt", folder / "bench.crt", folder / "bench.key")
