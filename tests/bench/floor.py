"""The raw gRPC floor beside RAMster's own 64-page put and get, in the same run (issue 14).

The floor is a minimal grpc.aio server (in a process of its own) and client moving the same
bytes as a RAMster batch: 64 lz4 pages concatenated into one message (a put's request, a get's
answer), one call at a time, no protobuf and no store; and, for a single get, one lz4 page back
for a key. RAMster's figures are its client library against a plaintext node. The gap between
the two rows is RAMster's own per-page work (docs/performance.md has the budget of where it
goes).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc

from ramster.client import Client
from ramster.page import compress_page
from tests.bench.references import BATCH, latency_ms
from tests.bench.table import awaited_rate, print_table
from tests.support.nodes import start_node

FLOOR_OPTIONS = (
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.max_send_message_length", 64 << 20),
)


def _identity(data: bytes) -> bytes:
    return data


def _blobs(pages: list[bytes]) -> list[bytes]:
    """BATCH lz4 pages concatenated, one blob a call."""
    return [
        b"".join(compress_page(page)[0] for page in pages[i : i + BATCH])
        for i in range(0, len(pages), BATCH)
    ]


async def _serve_floor(blobs: list[bytes], pages: list[bytes], ports: Any, stop: Any) -> None:
    stored: dict[bytes, bytes] = {}

    async def put(request: bytes, context: Any) -> bytes:
        stored[request[:8]] = request
        return b"\x08\x01"

    async def get(request: bytes, context: Any) -> bytes:
        return blobs[int.from_bytes(request, "little")]

    async def get_one(request: bytes, context: Any) -> bytes:
        return single[int.from_bytes(request, "little") % len(single)]

    single = [compress_page(page)[0] for page in pages]
    handlers = {
        "Put": grpc.unary_unary_rpc_method_handler(put, _identity, _identity),
        "Get": grpc.unary_unary_rpc_method_handler(get, _identity, _identity),
        "GetOne": grpc.unary_unary_rpc_method_handler(get_one, _identity, _identity),
    }
    server = grpc.aio.server(options=FLOOR_OPTIONS)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("Floor", handlers),))
    ports.put(server.add_insecure_port("127.0.0.1:0"))
    await server.start()
    await asyncio.get_running_loop().run_in_executor(None, stop.wait)
    await server.stop(None)


def _floor_server(blobs: list[bytes], pages: list[bytes], ports: Any, stop: Any) -> None:
    asyncio.run(_serve_floor(blobs, pages, ports, stop))


@contextlib.contextmanager
def floor_server(blobs: list[bytes], pages: list[bytes]) -> Iterator[int]:
    """A bare grpc.aio server in a process of its own, as a node is: yield its port."""
    context = multiprocessing.get_context("spawn")
    ports, stop = context.Queue(), context.Event()
    process = context.Process(target=_floor_server, args=(blobs, pages, ports, stop))
    process.start()
    try:
        yield ports.get(timeout=30)
    finally:
        stop.set()
        process.join(10)


SINGLE_GETS = 2000
"""Single-page round trips timed for a p50, on either side."""


async def _p50_ms(get_one: Callable[[int], Awaitable[object]]) -> float:
    """The median milliseconds of `SINGLE_GETS` awaited calls of `get_one(n)`, after a warm-up."""
    for n in range(100):
        await get_one(n)
    samples = []
    for n in range(SINGLE_GETS):
        start = time.perf_counter()
        await get_one(n)
        samples.append(time.perf_counter() - start)
    return latency_ms(samples)[0]


async def measure_floor(
    port: int, blobs: list[bytes], min_seconds: float = 1.0
) -> tuple[float, float, float]:
    """(put, get) pages/s of a bare grpc.aio round trip carrying BATCH lz4 pages a call, and
    the p50 ms of a round trip answering one lz4 page."""
    pages = len(blobs) * BATCH
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", FLOOR_OPTIONS) as channel:
        put_call = channel.unary_unary("/Floor/Put", _identity, _identity)
        get_call = channel.unary_unary("/Floor/Get", _identity, _identity)
        get_one = channel.unary_unary("/Floor/GetOne", _identity, _identity)

        async def put_all() -> None:
            for blob in blobs:
                await put_call(blob)

        async def get_all() -> None:
            for n in range(len(blobs)):
                await get_call(n.to_bytes(4, "little"))

        return (
            await awaited_rate(pages, put_all, min_seconds),
            await awaited_rate(pages, get_all, min_seconds),
            await _p50_ms(lambda n: get_one(n.to_bytes(4, "little"))),
        )


async def measure_ramster(
    address: str, pages: list[bytes], min_seconds: float = 1.0
) -> tuple[float, float, float]:
    """(put, get) pages/s of RAMster's client against the node at `address`, BATCH pages a
    call, one call at a time, and the p50 ms of a single-page get."""
    async with Client(address, client_name="floor") as client:
        pool = await client.new_pool(persistent=True)
        items = [(n >> 8, n & 0xFF, page) for n, page in enumerate(pages)]
        batches = [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
        keys = [[(oid, index) for oid, index, _ in batch] for batch in batches]

        async def put_all() -> None:
            for batch in batches:
                await client.put_many(pool, batch)

        async def get_all() -> None:
            for batch_keys in keys:
                await client.get_many(pool, batch_keys)

        put_rate = await awaited_rate(len(pages), put_all, min_seconds)
        get_rate = await awaited_rate(len(pages), get_all, min_seconds)

        async def get_one(n: int) -> None:
            oid, index, _ = items[n % len(items)]
            await client.get(pool, oid, index)

        return put_rate, get_rate, await _p50_ms(get_one)


def run(pages: list[bytes], rounds: int = 3) -> dict[str, float]:
    """The floor and RAMster, alternating `rounds` times (the machine is shared and noisy);
    the best of each is printed. Returns the single-get p50s (ms): RAMster's
    (`single_get_p50_ms`) and the floor's (`floor_single_p50_ms`)."""
    floor: list[tuple[float, float, float]] = []
    ours: list[tuple[float, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="ramster-floor-") as tmp:
        blobs = _blobs(pages)
        node, info = start_node(Path(tmp), "floor", "--memory", "1GiB")
        try:
            with floor_server(blobs, pages) as port:
                for _ in range(rounds):
                    floor.append(asyncio.run(measure_floor(port, blobs)))
                    ours.append(asyncio.run(measure_ramster(info["address"], pages)))
        finally:
            node.stop()
    best_floor, best_ours = _best(floor), _best(ours)
    rows: list[list[object]] = [
        ["raw grpc.aio floor (same bytes)", *_cells(best_floor)],
        ["ramster Client + node", *_cells(best_ours)],
        [
            "ramster / floor",
            f"{best_ours[0] / best_floor[0]:.2f}x",
            "",
            f"{best_ours[1] / best_floor[1]:.2f}x",
            "",
            f"{best_ours[2] / best_floor[2]:.2f}x",
        ],
    ]
    print_table(
        f"the gRPC floor, {len(pages)} pages, {BATCH}-page calls one at a time "
        f"(best of {rounds} alternating runs)",
        ["path", "put pages/s", "put µs/page", "get pages/s", "get µs/page", "single get p50 ms"],
        rows,
    )
    return {"single_get_p50_ms": best_ours[2], "floor_single_p50_ms": best_floor[2]}


def _best(runs: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    """The highest rates and the lowest p50 of `runs`."""
    return max(r[0] for r in runs), max(r[1] for r in runs), min(r[2] for r in runs)


def _cells(figures: tuple[float, float, float]) -> list[object]:
    put, get, p50 = figures
    return [put, f"{1e6 / put:.1f}", get, f"{1e6 / get:.1f}", f"{p50:.3f}"]


if __name__ == "__main__":  # this section alone: python -m tests.bench.floor
    from ramster.workload.corpus import build_corpus

    run(build_corpus(count=8192).pages)
