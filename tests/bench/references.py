"""The reference stores every wire benchmark is measured beside, in the same run: redis-py
against Redis and pymemcache against memcached (Debian packages), started here on free loopback
ports in a temporary folder and stopped by PID afterwards."""

from __future__ import annotations

import contextlib
import shutil
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import redis
from pymemcache.client.base import Client as MemcacheClient

from tests.bench.table import rate
from tests.support.processes import ManagedProcess, free_port, wait_for_port

BATCH = 64


@dataclass
class ReferenceFigures:
    name: str
    put_rate: float
    get_rate: float
    get_p50_ms: float
    get_p99_ms: float


def latency_ms(samples: list[float]) -> tuple[float, float]:
    """(p50, p99) in milliseconds of `samples` given in seconds."""
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49] * 1000, cuts[98] * 1000


def time_single_gets(get: object, keys: list[object], rounds: int = 2000) -> list[float]:
    samples = []
    for n in range(rounds):
        key = keys[n % len(keys)]
        start = time.perf_counter()
        get(key)  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return samples


@contextlib.contextmanager
def reference_servers(workdir: Path) -> Iterator[tuple[int, int]]:
    """Start redis-server and memcached; yield (redis port, memcached port)."""
    for binary in ("redis-server", "memcached"):
        if shutil.which(binary) is None:
            raise RuntimeError(f"{binary} is missing: `make bench` installs it (apt-get)")
    redis_port, memcached_port = free_port(), free_port()
    redis_proc = ManagedProcess(
        "redis-server",
        [
            "redis-server",
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        workdir / "redis.log",
    )
    memcached_proc = ManagedProcess(
        "memcached",
        [
            "memcached",
            "-l",
            "127.0.0.1",
            "-p",
            str(memcached_port),
            "-m",
            "2048",
            "-U",
            "0",
            "-u",
            "nobody",
        ],
        workdir / "memcached.log",
    )
    try:
        wait_for_port("127.0.0.1", redis_port, 10, redis_proc)
        wait_for_port("127.0.0.1", memcached_port, 10, memcached_proc)
        yield redis_port, memcached_port
    finally:
        redis_proc.stop()
        memcached_proc.stop()


def measure_redis(port: int, pages: list[bytes]) -> ReferenceFigures:
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        return _measure("redis-py + Redis", client.mset, client.mget, client.get, pages)
    finally:
        client.close()


def measure_redis_pipelined(port: int, pages: list[bytes], depth: int) -> tuple[float, float]:
    """(put, get) pages/s of `pages` as MSETs and MGETs of BATCH pages, `depth` commands to a
    pipeline (sent together, then every answer read)."""
    client = redis.Redis(host="127.0.0.1", port=port)
    batches = [
        {f"b:{i + j}": page for j, page in enumerate(pages[i : i + BATCH])}
        for i in range(0, len(pages), BATCH)
    ]
    rounds = [batches[i : i + depth] for i in range(0, len(batches), depth)]
    key_rounds = [[list(batch) for batch in round_] for round_ in rounds]

    def put() -> None:
        for round_ in rounds:
            pipe = client.pipeline(transaction=False)
            for batch in round_:
                pipe.mset(batch)
            pipe.execute()

    def get() -> None:
        for round_ in key_rounds:
            pipe = client.pipeline(transaction=False)
            for keys in round_:
                pipe.mget(keys)
            pipe.execute()

    try:
        return rate(len(pages), put), rate(len(pages), get)
    finally:
        client.close()


def measure_memcached(port: int, pages: list[bytes]) -> ReferenceFigures:
    client = MemcacheClient(("127.0.0.1", port), no_delay=True)
    try:
        return _measure(
            "pymemcache + memcached",
            lambda batch: client.set_many(batch, noreply=False),
            client.get_many,
            client.get,
            pages,
        )
    finally:
        client.close()


def _measure(
    name: str,
    put_many: Callable[[dict[str, bytes]], object],
    get_many: Callable[[list[str]], object],
    get: Callable[[str], object],
    pages: list[bytes],
) -> ReferenceFigures:
    """Batched puts and gets of BATCH pages, then single gets, with one store's client calls."""
    batches = [
        {f"p:{i + j}": page for j, page in enumerate(pages[i : i + BATCH])}
        for i in range(0, len(pages), BATCH)
    ]
    keys = [list(batch) for batch in batches]

    def put() -> None:
        for batch in batches:
            put_many(batch)

    def get_all() -> None:
        for batch_keys in keys:
            get_many(batch_keys)

    put_rate = rate(len(pages), put)
    get_rate = rate(len(pages), get_all)
    p50, p99 = latency_ms(time_single_gets(get, [k for ks in keys for k in ks]))
    return ReferenceFigures(name, put_rate, get_rate, p50, p99)
