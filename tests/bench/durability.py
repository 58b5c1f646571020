"""What two copies cost and how fast they come back (issue 6, docs/design.md §6), over loopback.

Three nodes with room to spare; node 1 takes persistent puts in 64-page batches, first keeping
one copy of each page (`persistent_copies` 1; that pool is destroyed after), then two (every
batch waits for a peer to store its copies), beside Redis MSET of the same pages in the same
run. Then the peer holding the most of node 1's second copies is killed (SIGKILL): the time
until every page has two copies again is split into noticing the death (its etcd lease, 3 s)
and rebuilding (reading each page and storing it on the other peer, at most `repair_rate` pages
a second).

Then a lone node holding many persistent pages takes single-page and 64-page puts, first with
`persistent_copies` 1, then 2: with no peer every page stays at risk, and the repair loop must
neither scan them again and again nor stall the puts meanwhile (issue 10, item 7).
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time
from pathlib import Path

import redis
from lz4.block import compress

from ramster.client import TLS, Client
from ramster.launcher import LocalCluster, NodeHandle
from ramster.params import ModuleParams
from tests.bench.references import BATCH, latency_ms, measure_redis, reference_servers
from tests.bench.table import awaited_rate, print_table

MEMORY = 512 * 2**20
PAGES = 8192
LONE_MEMORY = 128 * 2**20
HELD = 400_000
"""Pages the lone node holds while it is measured: same-filled pages, which cost the node little
more than their index entry, so many fit (the issue saw 1.17 M on a 64 MiB node)."""
MEASURED = HELD // 256 + 1
"""The first object of the measured puts: the held pages fill objects 0.. of 256 pages each."""
SINGLE_PUTS = 2000


async def _put_rate(client: Client, copies: int, pages: list[bytes]) -> float:
    await client.set_param("persistent_copies", str(copies))
    pool = await client.new_pool(persistent=True)
    rounds = 0

    async def put_all() -> None:
        nonlocal rounds
        base = rounds * len(pages)
        rounds += 1
        for start in range(0, len(pages), BATCH):
            batch = [
                ((base + n) >> 8, (base + n) & 0xFF, pages[n])
                for n in range(start, min(start + BATCH, len(pages)))
            ]
            stored = await client.put_many(pool, batch)
            if not all(stored):
                raise RuntimeError(f"{copies} copies: {stored.count(False)} pages refused")

    measured = await awaited_rate(len(pages), put_all)
    if copies == 1:  # or switching to two copies would start copying these meanwhile
        await client.destroy_pool(pool)
    return measured


async def _wait(client: Client, done: object, what: str, timeout: float = 120) -> float:
    started = time.perf_counter()
    while not done(await client.stats()):  # type: ignore[operator]
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"{what} not reached in {timeout} s")
        await asyncio.sleep(0.01)
    return time.perf_counter() - started


async def _measure(cluster: LocalCluster, pages: list[bytes]) -> dict[str, float]:
    first, *peers = cluster.nodes
    async with Client(
        first.address, client_name="bench-durability", tls=cluster.admin_tls
    ) as client:
        one = await _put_rate(client, 1, pages)
        two = await _put_rate(client, 2, pages)
        held = {}
        for peer in peers:
            async with Client(
                peer.address, client_name="bench-durability", tls=cluster.admin_tls
            ) as other:
                held[peer] = (await other.stats())["foreign_pers_pages"]
        victim = max(held, key=lambda peer: held[peer])
        before = (await client.stats())["peers_written_off"]
        os.kill(victim.pid, signal.SIGKILL)
        noticed = await _wait(
            client, lambda s: s["peers_written_off"] > before, "node 1 writing the peer off"
        )
        rebuilt = await _wait(
            client, lambda s: s["pers_pages_at_risk"] == 0, "two copies of every page again"
        )
        stats = await client.stats()
    return {
        "one": one,
        "two": two,
        "copies": stats["pers_pages_replicated"],
        "victim_held": held[victim],
        "noticed": noticed,
        "rebuilt": rebuilt,
    }


def storable(pages: list[bytes]) -> list[bytes]:
    """The first `PAGES` pages no node refuses for their size (as in the remotify benchmark)."""
    limit = 3 * 4096 // 4
    return [page for page in pages if len(compress(page, store_size=False)) <= limit][:PAGES]


def run(pages: list[bytes]) -> dict[str, float]:
    pages = storable(pages)
    with tempfile.TemporaryDirectory(prefix="ramster-bench-") as tmp:
        with reference_servers(Path(tmp)) as (redis_port, _):
            redis = measure_redis(redis_port, pages)
        with LocalCluster(3, [MEMORY], cluster="bench-copies", directory=Path(tmp)) as cluster:
            figures = asyncio.run(_measure(cluster, pages))
    one, two = figures["one"], figures["two"]
    print_table(
        f"persistent puts on node 1 of 3, {BATCH}-page batches over loopback",
        ["copies", "put pages/s", "x 1 copy", "x redis MSET"],
        [
            ["1 (persistent_copies 1)", one, "1.00x", f"{one / redis.put_rate:.2f}x"],
            ["2 (acknowledged once a peer holds the second)", two, f"{two / one:.2f}x",
             f"{two / redis.put_rate:.2f}x"],
            ["redis-py + Redis MSET (reference)", redis.put_rate, "-", "1.00x"],
        ],
    )  # fmt: skip
    rate = figures["victim_held"] / max(figures["rebuilt"], 1e-9)
    print_table(
        "rebuilding two copies after the peer holding most of node 1's copies is killed",
        ["measure", "value"],
        [
            ["second copies of node 1's pages (all its pages)", f"{figures['copies']:,.0f}"],
            ["of them on the killed peer, rebuilt", f"{figures['victim_held']:,.0f}"],
            ["kill -> written off (etcd lease 3 s)", f"{figures['noticed']:.2f} s"],
            ["written off -> every page on two nodes", f"{figures['rebuilt']:.2f} s"],
            ["rebuild rate", f"{rate:,.0f} pages/s"],
            ["bound (repair_rate)", f"{ModuleParams().repair_rate:,} pages/s"],
        ],
    )
    lone_node(pages)
    return {"two_copies_x": two / one}


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def _lone_puts(client: Client, pool: int, copies: int, pages: list[bytes]) -> list[object]:
    """Single-page put latency and 64-page put rate at `copies`, on keys apart from the held
    pages (rewritten in turn, so the node holds the same number of pages throughout)."""
    await client.set_param("persistent_copies", str(copies))  # wakes the repair loop
    keys = 4096
    samples = []
    for n in range(SINGLE_PUTS):
        started = time.perf_counter()
        if not await client.put(pool, MEASURED + n % 16, n % 256, pages[n % len(pages)]):
            raise RuntimeError(f"{copies} copies: a single put was refused")
        samples.append(time.perf_counter() - started)
    p50, p99 = latency_ms(samples)

    async def put_batches() -> None:
        for start in range(0, keys, BATCH):
            batch = [(MEASURED + n // 256, n % 256, pages[n % len(pages)]) for n in
                     range(start, start + BATCH)]  # fmt: skip
            stored = await client.put_many(pool, batch)
            if not all(stored):
                raise RuntimeError(f"{copies} copies: {stored.count(False)} pages refused")

    batched = await awaited_rate(keys, put_batches)
    stats = await client.stats()
    return [p50, p99, batched, stats["pers_pages_at_risk"], stats["repair_rounds"]]


async def _measure_lone(node: NodeHandle, tls: TLS, pages: list[bytes]) -> dict[int, list[object]]:
    async with Client(node.address, client_name="bench-lone", tls=tls) as client:
        await client.set_param("persistent_copies", "1")  # filled without copies to make
        pool = await client.new_pool(persistent=True)
        for start in range(0, HELD, 1024):
            numbers = range(start, start + 1024)
            batch = [(n >> 8, n & 0xFF, bytes([n % 251 + 1]) * 4096) for n in numbers]
            if not all(await client.put_many(pool, batch)):
                raise RuntimeError("the lone node refused pages while it was filled")
        rows = {}
        for copies in (1, 2):
            rows[copies] = [*await _lone_puts(client, pool, copies, pages), _rss_mib(node.pid)]
    return rows


def _redis_single_sets(port: int, pages: list[bytes]) -> tuple[float, float]:
    """(p50, p99) in ms of single SETs of a page, as the lone node's single puts."""
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        samples = []
        for n in range(SINGLE_PUTS):
            started = time.perf_counter()
            client.set(f"s:{n % 4096}", pages[n % len(pages)])
            samples.append(time.perf_counter() - started)
        return latency_ms(samples)
    finally:
        client.close()


def lone_node(pages: list[bytes]) -> None:
    """The table of persistent puts of `pages` (`storable` ones) on a lone node holding `HELD`
    pages, with copies 1 and 2."""
    with tempfile.TemporaryDirectory(prefix="ramster-bench-") as tmp:
        with reference_servers(Path(tmp)) as (redis_port, _):
            redis_batched = measure_redis(redis_port, pages)
            redis_p50, redis_p99 = _redis_single_sets(redis_port, pages)
        with LocalCluster(1, [LONE_MEMORY], cluster="bench-lone", directory=Path(tmp)) as lone:
            rows = asyncio.run(_measure_lone(lone.nodes[0], lone.admin_tls, pages))
    print_table(
        f"persistent put latency on a lone node holding {HELD:,} pages "
        f"({LONE_MEMORY >> 20} MiB, no peer)",
        ["persistent_copies", "put p50 ms", "put p99 ms", f"{BATCH}-page put pages/s",
         "pages at risk", "repair rounds", "node RSS MiB"],
        [
            ["1", *rows[1]],
            ["2 (no peer: every page at risk, repair loop waiting)", *rows[2]],
            ["redis-py + Redis SET / MSET (reference)", redis_p50, redis_p99,
             redis_batched.put_rate, "-", "-", "-"],
        ],
    )  # fmt: skip
