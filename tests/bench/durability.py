"""What two copies cost and how fast they come back (issue 6, DESIGN §6), over loopback.

Three nodes with room to spare; node 1 takes persistent puts in 64-page batches, first keeping
one copy of each page (`persistent_copies` 1; that pool is destroyed after), then two (every
batch waits for a peer to store its copies), beside Redis MSET of the same pages in the same
run. Then the peer holding the most of node 1's second copies is killed (SIGKILL): the time
until every page has two copies again is split into noticing the death (its etcd lease, 3 s)
and rebuilding (reading each page and storing it on the other peer, at most `repair_rate` pages
a second).
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time
from pathlib import Path

from lz4.block import compress

from ramster.client import Client
from ramster.launcher import LocalCluster
from ramster.remote.policy import RemotifyConfig
from tests.bench.references import measure_redis, reference_servers
from tests.bench.table import print_table
from tests.bench.wire import BATCH, _rate

MEMORY = 512 * 2**20
PAGES = 8192


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

    measured = await _rate(len(pages), put_all)
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
    async with Client(first.address, client_name="bench-durability") as client:
        one = await _put_rate(client, 1, pages)
        two = await _put_rate(client, 2, pages)
        held = {}
        for peer in peers:
            async with Client(peer.address, client_name="bench-durability") as other:
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


def run(pages: list[bytes]) -> None:
    limit = 3 * 4096 // 4  # as in the remotify benchmark: never refused for its size
    pages = [page for page in pages if len(compress(page, store_size=False)) <= limit][:PAGES]
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
            ["bound (repair_rate)", f"{RemotifyConfig().repair_rate:,.0f} pages/s"],
        ],
    )
