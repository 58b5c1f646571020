"""A cluster of real `ramster node` processes in one etcd cluster, and what its tests put and check.

`Cluster` holds the nodes of one test and a client of each; pages are numbered (`text_page`,
`key`, `pages_of`), stored through refusals (`store_all`), read back (`read_back`), and a node is
waited on until it is done shipping (`done_shipping`); `remote_view` and `counters` read what the
nodes count. The fixtures that build a `Cluster` are in the test modules that use one.

Not here: starting and stopping node processes (`tests.support.nodes`), raw peer calls
(`tests.support.wire`).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable
from typing import cast

from nodemanager.cli import list_members, write_param
from ramster.client import TLS, SyncClient
from ramster.units import MiB
from ramster.zcache import ZcacheConfig
from tests.support.nodes import NodeFactory, NodeProcess, file_stem
from tests.support.processes import wait_for

PAGE = 4096
OBJECT_PAGES = 64
"""Pages per object: page n is index n % 64 of object n // 64."""
BATCH = 512
"""Pages per put_many / get_many call."""
STORE_TIMEOUT = 20.0
SETTLE_TIMEOUT = 15.0
HIGH_WATERMARK = ZcacheConfig(memory=MiB).high_watermark
"""The nodes' (the default): a node above it starts shipping."""


def _text(size: int, seed: int = 7) -> bytes:
    """`size` bytes of words drawn from a small vocabulary: text that lz4 packs about 2:1."""
    rng = random.Random(seed)
    words = [f"{stem}{n}" for n in range(40) for stem in ("alpha", "beta", "gamma", "delta", "tau")]
    return " ".join(rng.choices(words, k=size // 6)).encode()[:size]


_TEXT = _text(1 << 20)


def text_page(n: int) -> bytes:
    """Page `n`: distinct, deterministic text that lz4 packs to about 2 KB (well under every
    zcache admission limit)."""
    head = f"page {n:08d}\n".encode()
    start = (n * 7919) % (len(_TEXT) - PAGE)
    return head + _TEXT[start : start + PAGE - len(head)]


def _vocabulary(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz_:{}", k=120)) for _ in range(100)]


def record_page(n: int, seed: int = 1) -> bytes:
    """35 lines of 100 of the vocabulary `seed`: pages alike, each packed poorly on its own,
    well with a zstd dictionary trained on them."""
    return b"".join(random.Random(n).choices(_vocabulary(seed), k=35))[:4096]


def key(n: int) -> tuple[int, int]:
    return n // OBJECT_PAGES, n % OBJECT_PAGES


def pages_of(objects: Iterable[int]) -> list[int]:
    return [o * OBJECT_PAGES + i for o in objects for i in range(OBJECT_PAGES)]


class Cluster:
    """The nodes of one test, in one etcd cluster, and one client of each, by node name.

    `copies` is the cluster's `persistent_copies`, written to etcd before any node starts."""

    def __init__(self, factory: NodeFactory, etcd_url: str, name: str, copies: int = 1) -> None:
        self.factory = factory
        self.etcd_url = etcd_url
        self.name = name
        self.nodes: dict[str, NodeProcess] = {}
        self.clients: dict[str, SyncClient] = {}
        asyncio.run(write_param(etcd_url, name, "persistent_copies", str(copies)))

    def start(
        self,
        name: str,
        memory: str,
        etcd_url: str | None = None,
        listen: str = "127.0.0.1:0",
        flags: tuple[str, ...] = (),
        tls: tuple[TLS, TLS] | None = None,
    ) -> NodeProcess:
        """Node `name` with a budget of `memory`, reaching etcd at `etcd_url` (default: the
        cluster's), listening on `listen`, with further `ramster node` `flags`; with `tls`, the
        node serves with the first and its client calls with the second."""
        flags = ("--etcd", etcd_url or self.etcd_url, "--cluster", self.name, *flags)
        if tls is not None:
            served = tls[0]
            flags += ("--tls-ca", str(served.ca), "--tls-cert", str(served.cert))
            flags += ("--tls-key", str(served.key))
        node = self.factory.start(name, memory=memory, extra_flags=flags, listen=listen)
        self.nodes[name] = node
        client_tls = None if tls is None else tls[1]
        client_name = f"test-{file_stem(name)}"
        self.clients[name] = SyncClient(node.address, client_name=client_name, tls=client_tls)
        return node

    def stats(self, name: str) -> dict[str, int]:
        return self.clients[name].stats()

    def foreign_pers(self, *names: str) -> dict[str, int]:
        return {name: self.stats(name)["foreign_pers_pages"] for name in names}

    def published_free(self) -> dict[str, int]:
        """Free bytes of each node as etcd has them now (what placement ranks peers by)."""
        members = asyncio.run(list_members(self.etcd_url, self.name))
        return {member.name: member.free_bytes for member in members}

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


def store_all(
    client: SyncClient, pool: int, numbers: Iterable[int], timeout: float = STORE_TIMEOUT
) -> int:
    """Put every page, offering again those refused while the node ships pages out (a refused
    persistent put is a normal answer when the store is full); return how many were refused."""
    pending, refused_total = list(numbers), 0
    deadline = time.monotonic() + timeout
    while pending:
        refused = []
        for start in range(0, len(pending), BATCH):
            batch = pending[start : start + BATCH]
            results = client.put_many(pool, [(*key(n), text_page(n)) for n in batch])
            refused += [n for n, ok in zip(batch, results, strict=True) if not ok]
        refused_total += len(refused)
        pending = refused
        if pending:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(pending)} pages still refused after {timeout} s")
            time.sleep(0.05)
    return refused_total


def read_back(client: SyncClient, pool: int, numbers: list[int], free: bool | None) -> list[int]:
    """The pages among `numbers` that did not read back byte-exact (missing or wrong)."""
    got = client.get_many(pool, [key(n) for n in numbers], free=free)
    return [n for n, data in zip(numbers, got, strict=True) if data != text_page(n)]


def done_shipping(
    stats: Callable[[], dict[str, int]], timeout: float = SETTLE_TIMEOUT
) -> dict[str, int]:
    """A node's `stats()` once what its peers hold for it no longer changes: no shipping round
    runs and no flush waits to be sent (`remotify_active` 0), and no round will start (it is
    not above its high watermark, or ramster is off). A state, not a quiet moment: two equal
    reads can fall within a peer's failure backoff, after which shipping goes on."""

    def idle() -> dict[str, int] | None:
        now = stats()
        starts = now["ramster_on"] and now["used_bytes"] > HIGH_WATERMARK * now["memory_bytes"]
        return None if now["remotify_active"] or starts else now

    return cast(dict[str, int], wait_for(idle, timeout, "a node done shipping"))


def counters(cluster: Cluster, nodes: str | tuple[str, ...], *names: str) -> dict[str, int]:
    """Counters `names` of a node, or summed over several."""
    total = dict.fromkeys(names, 0)
    for node in (nodes,) if isinstance(nodes, str) else nodes:
        stats = cluster.stats(node)
        for name in names:
            total[name] += stats[name]
    return total


def remote_view(
    cluster: Cluster, origin: str, holders: tuple[str, ...], stats: dict[str, int] | None = None
) -> dict[str, int]:
    """What the origin says it has remote (in `stats`, if given), beside what each holder
    holds for it."""
    stats = stats or cluster.stats(origin)
    view = {
        "pers_pages_remoted": stats["pers_pages_remoted"],
        "pers_pages_repatriated": stats["pers_pages_repatriated"],
        "remote_pers_pages": stats["remote_pers_pages"],
        "remotify_batches": stats["remotify_batches"],
    }
    view.update(cluster.foreign_pers(*holders))
    return view
