"""The workloads docs/performance.md profiles, each with py-spy on the nodes it runs.

``python -m tests.bench.profile WORKLOAD [--seconds S] [--spy DIR]`` runs one workload on real
nodes and prints its rate; with ``--spy`` every node is sampled by py-spy (200 Hz, raw format)
while the workload runs, and the functions taking the largest shares of each node's samples are
printed (the raw files stay in DIR). Not part of ``make bench``: sampling slows what it samples.

Workloads:
- ``copies-1``, ``copies-2``: 64-page persistent puts one at a time on node 1 of a 3-node
  `LocalCluster` (mTLS, sealed pages), with `persistent_copies` 1 or 2.
- ``remotify``: node 1 (384 MiB, one copy) filled with `ramster` off, then on: it ships to its
  peer down to its low watermark.
- ``remote-gets``: after ``remotify`` (96 MiB), 64-page gets (keep) of pages on the peer.

``--plaintext`` runs the workload on a plaintext cluster (no TLS, pages shipped unsealed) for a
baseline. Beside each rate: the CPU time (user and system, from /proc) each node spent per page
moved, which a machine busy with other work changes much less than the rate.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ramster.client import Client
from ramster.launcher import LocalCluster
from ramster.wire.tls import TLS
from ramster.workload.corpus import build_corpus
from tests.bench.cluster import _fill
from tests.bench.durability import storable
from tests.bench.references import BATCH

RATE_HZ = 200
TOP = 25
FRAMES_LEFT_OUT = frozenset(
    ("<module>", "main", "_run", "run", "Runner.run", "BaseEventLoop.run_until_complete",
     "BaseEventLoop.run_forever", "Thread._bootstrap", "Thread._bootstrap_inner")
)  # fmt: skip
"""Frames in nearly every sample of a node (its event loop, its threads): not shown."""


@contextmanager
def spied(pids: list[int], folder: Path | None) -> Iterator[None]:
    """py-spy on each of `pids` while the block runs, if `folder` is given."""
    if folder is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    spies = [
        subprocess.Popen(
            ["py-spy", "record", "-p", str(pid), "-r", str(RATE_HZ), "-f", "raw", "-o",
             str(folder / f"node{n + 1}.txt")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n, pid in enumerate(pids)
    ]  # fmt: skip
    time.sleep(1)  # attached before the work starts
    try:
        yield
    finally:
        for spy in spies:
            spy.send_signal(2)  # py-spy writes its file on SIGINT
        for spy in spies:
            spy.wait(30)
    for n in range(len(pids)):
        print_shares(folder / f"node{n + 1}.txt")


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) process `pid` has used, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def cpu_per_page(pids: list[int], pages: Callable[[], int]) -> Iterator[None]:
    """Print each of `pids`' CPU time per page moved while the block runs (`pages()`: how many
    were moved by its end)."""
    before = [cpu_seconds(pid) for pid in pids]
    yield
    moved = max(pages(), 1)
    used = [cpu_seconds(pid) - start for pid, start in zip(pids, before, strict=True)]
    print("  CPU per page: " + ", ".join(
        f"node{n + 1} {1e6 * seconds / moved:.1f} µs" for n, seconds in enumerate(used)
    ) + f"; both {1e6 * sum(used) / moved:.1f} µs")  # fmt: skip


def print_shares(raw: Path) -> None:
    """The functions in most of `raw`'s samples (inclusive), as shares of all its samples."""
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        total += int(samples)
        for frame in set(stack.split(";")):
            name, _, where = frame.partition(" (")
            if name not in FRAMES_LEFT_OUT:
                inclusive[f"{name} ({where.rsplit('/', 1)[-1].split(':')[0]})"] += int(samples)
    print(f"\n{raw.name}: {total} samples")
    for frame, count in inclusive.most_common(TOP):
        print(f"  {100 * count / max(total, 1):5.1f} %  {frame}")


async def _timed(seconds: float, batch: Callable[[int], Awaitable[int]], pids: list[int]) -> float:
    """Pages a second of `batch(n)` (which moves the pages it returns) repeated for `seconds`;
    the CPU per page of `pids` printed."""
    moved, n, start = 0, 0, time.perf_counter()
    with cpu_per_page(pids, lambda: moved):
        while time.perf_counter() - start < seconds:
            moved += await batch(n)
            n += 1
    return moved / (time.perf_counter() - start)


def _admin(cluster: LocalCluster) -> TLS | None:
    return None if cluster.plaintext else cluster.admin_tls


def copies(copies: int, seconds: float, spy: Path | None, plaintext: bool) -> None:
    pages = storable(build_corpus(count=16384).pages)

    async def run(cluster: LocalCluster) -> float:
        async with Client(cluster.nodes[0].address, client_name="p", tls=_admin(cluster)) as c:
            await c.set_param("persistent_copies", str(copies))
            pool = await c.new_pool(persistent=True)

            async def put(n: int) -> int:
                keys = range(n * BATCH, (n + 1) * BATCH)
                batch = [(k >> 8, k & 0xFF, pages[k % len(pages)]) for k in keys]
                if not all(await c.put_many(pool, batch)):
                    raise RuntimeError("a page was refused")
                return BATCH

            pids = [node.pid for node in cluster.nodes]
            with spied(pids, spy):
                return await _timed(seconds, put, pids)

    with (
        tempfile.TemporaryDirectory(prefix="ramster-profile-") as tmp,
        LocalCluster(
            3, [1 << 30], cluster="profile", directory=Path(tmp), plaintext=plaintext
        ) as cluster,
    ):
        print(f"copies {copies}: {asyncio.run(run(cluster)):,.0f} pages/s")


def remote(memory: int, seconds: float, spy: Path | None, gets: bool, plaintext: bool) -> None:
    pages = storable(build_corpus(count=16384).pages)

    async def run(cluster: LocalCluster) -> None:
        async with Client(cluster.nodes[0].address, client_name="p", tls=_admin(cluster)) as c:
            await c.set_param("persistent_copies", "1")
            await c.set_param("ramster", "off")
            pool = await c.new_pool(persistent=True)
            await _fill(c, pool, pages)
            pids = [node.pid for node in cluster.nodes]
            s = await c.stats()
            with (
                spied(pids if not gets else [], spy),
                cpu_per_page(pids, lambda: s["pers_pages_remoted"]),
            ):
                start = time.perf_counter()
                await c.set_param("ramster", "on")
                while (s := await c.stats())["used_bytes"] > 0.8 * memory:
                    await asyncio.sleep(0.005)
                wall = time.perf_counter() - start
            print(f"remotify: {s['pers_pages_remoted']:,} pages in {wall:.2f} s = "
                  f"{s['pers_pages_remoted'] / wall:,.0f} pages/s")  # fmt: skip
            if not gets:
                return
            keys = [(n >> 8, n & 0xFF) for n in range(min(s["pers_pages_remoted"], 4096))]

            async def get(n: int) -> int:
                start = n * BATCH % len(keys)
                await c.get_many(pool, keys[start : start + BATCH], free=False)
                return len(keys[start : start + BATCH])

            with spied(pids, spy):
                print(f"remote gets: {await _timed(seconds, get, pids):,.0f} pages/s")

    with (
        tempfile.TemporaryDirectory(prefix="ramster-profile-") as tmp,
        LocalCluster(
            2, [memory, 16 * memory], cluster="profile", directory=Path(tmp), plaintext=plaintext
        ) as cluster,
    ):
        asyncio.run(run(cluster))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.profile")
    parser.add_argument("workload", choices=["copies-1", "copies-2", "remotify", "remote-gets"])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--spy", type=Path, help="folder for py-spy's raw samples of each node")
    parser.add_argument(
        "--plaintext", action="store_true", help="no TLS, pages shipped unsealed: the baseline"
    )
    args = parser.parse_args(argv)
    if args.workload.startswith("copies-"):
        copies(int(args.workload[-1]), args.seconds, args.spy, args.plaintext)
    elif args.workload == "remotify":
        remote(384 << 20, args.seconds, args.spy, gets=False, plaintext=args.plaintext)
    else:
        remote(96 << 20, args.seconds, args.spy, gets=True, plaintext=args.plaintext)


if __name__ == "__main__":
    main(sys.argv[1:])
