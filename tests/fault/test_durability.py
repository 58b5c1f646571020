"""No acknowledged persistent page lost (docs/design.md §6): two copies, failover, repair, recovery,
drain.

Real etcd, real `ramster node` processes on loopback, clusters with `persistent_copies` 2. A
persistent put is acknowledged once a peer holds its second copy; killing any one node (SIGKILL)
loses no acknowledged page: reads fail over to the other copy at once, the survivors rebuild
the missing copies, and a node restarted under its name takes its pages back, so a client (or
frontswap) reads them again. `ramster drain` moves every copy off a node before it stops, so a
rolling restart loses nothing. The chaos test kills and restarts random nodes under a verifying
workload and prints its figures. Partitions in network namespaces: `test_partition.py`.
"""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from ramster.api.v1 import peer_pb2, tmem_pb2
from ramster.client import Frontswap, RamsterError, SyncClient
from ramster.launcher import free_port
from tests.support.cluster import (
    BATCH,
    Cluster,
    done_shipping,
    key,
    pages_of,
    read_back,
    store_all,
    text_page,
)
from tests.support.etcd import EtcdProcess
from tests.support.nodes import RAMSTER, NodeFactory, run_cli
from tests.support.processes import wait_for
from tests.support.wire import RawNode, remote_page

REDUNDANCY_TIMEOUT = 30.0
"""Seconds the survivors get to rebuild every missing copy (a lease of 3 s, then the repair)."""


@pytest.fixture
def durable(node_factory: NodeFactory, etcd: EtcdProcess, etcd_cluster: str) -> Iterator[Cluster]:
    running = Cluster(node_factory, etcd.url, etcd_cluster, copies=2)
    yield running
    running.close()


def restart(cluster: Cluster, name: str) -> None:
    """Start node `name` again (same name, so the same number) and a new client of it."""
    client = cluster.clients.pop(name, None)
    if client is not None:
        client.close()
    node = cluster.nodes[name].start()
    cluster.clients[name] = SyncClient(node.address, client_name=f"test-{name}")


def at_risk(cluster: Cluster) -> dict[str, int]:
    return {name: cluster.stats(name)["pers_pages_at_risk"] for name in cluster.clients}


def written_off(cluster: Cluster) -> dict[str, int]:
    return {name: cluster.stats(name)["peers_written_off"] for name in cluster.clients}


def kill(cluster: Cluster, name: str) -> float:
    """SIGKILL node `name`; return once every other node stopped counting on its copies (its
    lease ran out), with the time of the kill."""
    before = written_off(cluster)
    killed = time.monotonic()
    cluster.nodes[name].kill()
    cluster.clients.pop(name).close()
    wait_for(
        lambda: all(n > before[name] for name, n in written_off(cluster).items()),
        timeout=REDUNDANCY_TIMEOUT,
        what=f"every node writing off node {name}",
    )
    return killed


def wait_redundant(cluster: Cluster, timeout: float = REDUNDANCY_TIMEOUT) -> float:
    """Seconds until no node has a persistent page with fewer than two copies."""
    started = time.monotonic()
    seen: list[dict[str, int]] = []

    def redundant() -> bool:
        seen[:] = [at_risk(cluster)]
        return not any(seen[0].values())

    try:
        wait_for(redundant, timeout=timeout, what="every persistent page on two nodes again")
    except AssertionError as error:
        raise AssertionError(f"{error}: pages at risk by node {seen}") from None
    return time.monotonic() - started


def test_an_acknowledged_put_has_a_copy_on_a_peer_and_outlives_that_peer(
    durable: Cluster,
) -> None:
    for name in ("A", "B", "C"):
        durable.start(name, "64MiB")
    a = durable.clients["A"]
    pool = a.new_pool(persistent=True)
    numbers = pages_of(range(24))  # 1536 pages, all local on A
    store_all(a, pool, numbers)

    stats = durable.stats("A")
    assert stats["pers_pages_replicated"] == len(numbers)
    assert stats["pers_copies_made"] == len(numbers)
    held = durable.foreign_pers("B", "C")
    assert sum(held.values()) == len(numbers), held

    victim = max(held, key=lambda name: held[name])
    survivor = "C" if victim == "B" else "B"
    killed = kill(durable, victim)
    wait_redundant(durable)
    took = time.monotonic() - killed
    assert durable.foreign_pers(survivor) == {survivor: len(numbers)}
    assert read_back(a, pool, numbers, free=False) == []
    print(f"\nredundancy rebuilt for {held[victim]} pages in {took:.1f} s after the kill")


def test_a_get_fails_over_to_the_replica_when_the_holder_dies(durable: Cluster) -> None:
    durable.start("A", "4MiB")
    durable.start("B", "64MiB")
    durable.start("C", "64MiB")
    a = durable.clients["A"]
    pool = a.new_pool(persistent=True)
    numbers = pages_of(range(48))  # about 6 MiB packed: A ships its oldest pages out
    store_all(a, pool, numbers)
    assert done_shipping(lambda: durable.stats("A"))["remote_pers_pages"] > 0
    held = durable.foreign_pers("B", "C")
    victim = "B" if held["B"] >= held["C"] else "C"

    durable.nodes[victim].kill()  # before its lease runs out, A still thinks it is there
    started = time.monotonic()
    assert read_back(a, pool, numbers, free=False) == []
    elapsed = time.monotonic() - started
    stats = durable.stats("A")
    assert stats["remote_gets_failed_over"] > 0, stats
    assert stats["remote_pers_pages_lost"] == 0
    assert elapsed < 15, elapsed


def test_a_restarted_node_gives_frontswap_its_pages_back(durable: Cluster) -> None:
    durable.start("A", "64MiB", listen=f"127.0.0.1:{free_port()}")  # the app's target stays
    durable.start("B", "64MiB")
    durable.start("C", "64MiB")
    swap_pages = 600
    swap = Frontswap(durable.nodes["A"].address, client_name="swapper")
    try:
        assert swap.wait_ready(10)
        swap.init(0, swap_pages)
        for offset in range(swap_pages):
            assert swap.store(0, offset, text_page(offset))
        before = swap.backend
        number = durable.stats("A")["node_number"]

        durable.nodes["A"].kill()
        restart(durable, "A")
        assert durable.stats("A")["node_number"] == number
        assert durable.stats("A")["pers_pages_recovered"] == swap_pages
        wait_for(lambda: swap.backend not in (None, before), what="frontswap registered again")
        assert [swap.load(0, offset) for offset in range(swap_pages)] == [
            text_page(offset) for offset in range(swap_pages)
        ]
        assert swap.counters()["failed_loads"] == 0
    finally:
        swap.close()
    wait_redundant(durable)


def test_a_restarted_client_pool_reads_every_page_back(durable: Cluster) -> None:
    for name in ("A", "B", "C"):
        durable.start(name, "64MiB")
    a = durable.clients["A"]
    pool = a.new_pool(persistent=True)
    numbers = pages_of(range(16))
    store_all(a, pool, numbers)
    durable.nodes["A"].kill()
    restart(durable, "A")
    a = durable.clients["A"]
    assert a.new_pool(persistent=True) == pool  # the recovered pool, claimed again
    assert read_back(a, pool, numbers, free=False) == []
    took = wait_redundant(durable)
    assert read_back(a, pool, numbers, free=True) == []
    assert a.get_many(pool, [key(n) for n in numbers[:BATCH]], free=False) == [None] * BATCH
    print(f"\nrecovered {len(numbers)} pages; two copies again {took:.1f} s later")


def test_a_restart_takes_back_only_the_epochs_etcd_recorded_not_one_a_peer_was_given(
    durable: Cluster,
) -> None:
    """The recovery poisoning of issue 12: pages put on the holders under a made-up epoch of A
    that sorts after A's real one (and with later versions) are not what A takes back."""
    for name in ("A", "B", "C"):
        durable.start(name, "64MiB")
    a = durable.clients["A"]
    pool = a.new_pool(persistent=True)
    numbers = pages_of(range(8))
    store_all(a, pool, numbers)
    assert sum(durable.foreign_pers("B", "C").values()) == len(numbers)
    number = durable.stats("A")["node_number"]
    made_up = "fffffffffffff000"  # a valid epoch, later than any real one
    version = time.time_ns() // 1000  # later than every version A gave
    poison = [
        remote_page(
            pool_uid=1, oid=key(n)[0], index=key(n)[1], data=text_page(n + 10**6), version=version
        )
        for n in numbers
    ]
    for holder in ("B", "C"):
        with RawNode(durable.nodes[holder].address) as wire:
            request = peer_pb2.PeerPutRequest(
                origin=peer_pb2.Origin(node_number=number, epoch=made_up),
                pages=poison,
                pools=[  # the record a restarted A would give the pool back to its client by
                    peer_pb2.PoolRecord(
                        pool=1, client="test-A", pool_id=pool, persistent=True, page_size=4096
                    )
                ],
            )
            stored = wire.call("/ramster.api.v1.Peer/PutPages", request)
            assert stored.parsed(peer_pb2.PeerPutResponse).results == [
                tmem_pb2.PUT_STATUS_STORED
            ] * len(numbers)

    durable.nodes["A"].kill()
    restart(durable, "A")
    a = durable.clients["A"]
    assert durable.stats("A")["pers_pages_recovered"] == len(numbers)
    assert a.new_pool(persistent=True) == pool
    assert read_back(a, pool, numbers, free=False) == []  # every page A's own, none made up
    # The holders dropped the made-up epoch's pages.
    for holder in ("B", "C"):
        with RawNode(durable.nodes[holder].address) as wire:
            request = peer_pb2.PeerGetRequest(
                origin=peer_pb2.Origin(node_number=number, epoch=made_up),
                keys=[
                    peer_pb2.RemoteKey(pool=1, oid=tmem_pb2.Oid(word0=key(n)[0]), index=key(n)[1])
                    for n in numbers
                ],
            )
            answer = wire.call("/ramster.api.v1.Peer/GetPages", request)
            assert list(answer.parsed(peer_pb2.PeerGetResponse).found) == [False] * len(numbers)
    wait_redundant(durable)


def test_drain_moves_every_copy_off_and_a_rolling_restart_loses_nothing(
    durable: Cluster,
) -> None:
    names = ("A", "B", "C")
    for name in names:
        durable.start(name, "64MiB")
    pools = {name: durable.clients[name].new_pool(persistent=True) for name in names}
    numbers = {name: pages_of(range(n * 8, n * 8 + 8)) for n, name in enumerate(names)}
    for name in names:
        store_all(durable.clients[name], pools[name], numbers[name])

    for name in names:
        held = durable.stats(name)["foreign_pers_pages"]
        drained = subprocess.run(
            [RAMSTER, "drain", "--node", durable.nodes[name].address, "--timeout", "20"],
            capture_output=True,
            text=True,
            timeout=40,
            check=False,
        )
        assert drained.returncode == 0, drained.stdout + drained.stderr
        assert drained.stdout == (
            f"node {durable.nodes[name].address} drained: no page of another node and no "
            "persistent page is left\n"
        ), held
        stats = durable.stats(name)
        assert (stats["foreign_pers_pages"], stats["pers_zpages"]) == (0, 0)  # nothing only here
        assert stats["remote_pers_pages"] == len(numbers[name])  # its own pages: on two peers
        durable.clients.pop(name).close()
        before = written_off(durable)
        assert durable.nodes[name].stop() == 0
        # While it is down, every page still has two copies.
        wait_for(
            lambda seen=before: all(n > seen[o] for o, n in written_off(durable).items()),
            what=f"{name} written off",
        )
        assert at_risk(durable) == dict.fromkeys(before, 0)
        restart(durable, name)
        assert durable.stats(name)["pers_pages_recovered"] == len(numbers[name])
        wait_redundant(durable)
        client = durable.clients[name]
        assert client.new_pool(persistent=True) == pools[name]
    for name in names:
        assert read_back(durable.clients[name], pools[name], numbers[name], free=False) == []


class Workload:
    """Writes persistent and ephemeral pages to every node from a thread of its own, with
    clients of its own, and records each acknowledged persistent page (its content is
    `text_page(n)`, so the record is its checksum). A node that is down is skipped, and every
    error counted by its kind; a restarted one is reached at its new address, where the
    client's pool must come back under the same id."""

    def __init__(
        self, cluster: Cluster, names: tuple[str, ...], keys: int, batch: int = 128
    ) -> None:
        self.cluster = cluster
        self.names = names
        self.keys = keys
        self.batch = batch
        self.acked: dict[str, set[int]] = {name: set() for name in names}
        self.puts = 0
        self.refused = 0
        self.wrong_ephemeral = 0
        self.pool_changes: list[str] = []
        self.errors: Counter[str] = Counter()
        """Failed calls by the kind of error, `unexpected <type>` for any not a RamsterError."""
        self.acked_by: Counter[str] = Counter()
        """Persistent puts acknowledged by each node so far."""
        self._next = dict.fromkeys(names, 0)
        self._clients: dict[str, tuple[str, SyncClient, int, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-workload")

    def __enter__(self) -> Workload:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        for _, client, _, _ in self._clients.values():
            client.close()

    def stop(self) -> None:
        """Stop writing (the clients stay open for `lost`)."""
        self._stop.set()
        self._thread.join(30)

    def written(self) -> int:
        """Acknowledged persistent pages held now."""
        return sum(len(pages) for pages in self.acked.values())

    def _client(self, name: str) -> tuple[SyncClient, int, int]:
        address = self.cluster.nodes[name].address
        known = self._clients.get(name)
        if known is not None and known[0] == address:
            return known[1:]
        if known is not None:
            known[1].close()
        client = SyncClient(address, client_name=f"writer-{name}", timeout=5)
        pool = client.new_pool(persistent=True)
        if known is not None and pool != known[2]:
            self.pool_changes.append(f"{name}: pool {known[2]} came back as {pool}")
        cache = client.new_pool()
        self._clients[name] = (address, client, pool, cache)
        return client, pool, cache

    def _run(self) -> None:
        while not self._stop.is_set():
            for name in self.names:
                try:
                    self._write(name)
                except RamsterError as error:  # down, or recovering: the next round tries again
                    self.errors[type(error).__name__] += 1
                except Exception as error:  # a bug: counted, and the workload goes on
                    self.errors[f"unexpected {type(error).__name__}: {error}"] += 1

    def _write(self, name: str) -> None:
        client, pool, cache = self._client(name)
        batch = [(self._next[name] + i) % self.keys for i in range(self.batch)]
        self._next[name] += self.batch
        results = client.put_many(pool, [(*key(n), text_page(n)) for n in batch])
        for n, ok in zip(batch, results, strict=True):
            # A refused put of a key that was stored leaves it absent (tmem's rule).
            (self.acked[name].add if ok else self.acked[name].discard)(n)
        self.puts += len(batch)
        self.refused += results.count(False)
        self.acked_by[name] += len(batch) - results.count(False)
        client.put_many(cache, [(*key(n), text_page(n)) for n in batch])
        got = client.get_many(cache, [key(n) for n in batch], free=False)
        self.wrong_ephemeral += sum(
            data is not None and data != text_page(n) for n, data in zip(batch, got, strict=True)
        )

    def lost(self) -> int:
        """Acknowledged persistent pages that do not read back exact now."""
        lost = 0
        for name in self.names:
            client, pool, _ = self._client(name)
            wanted = sorted(self.acked[name])
            for start in range(0, len(wanted), BATCH):
                lost += len(read_back(client, pool, wanted[start : start + BATCH], False))
        return lost


def test_chaos_kills_and_restarts_random_nodes_and_loses_no_acknowledged_page(
    durable: Cluster,
) -> None:
    seed = int(os.environ.get("RAMSTER_CHAOS_SEED") or time.time())
    print(f"\nchaos seed {seed} (RAMSTER_CHAOS_SEED={seed} runs this test again)", flush=True)
    rng = random.Random(seed)
    names = ("A", "B", "C", "D")
    durable.start("A", "8MiB")  # A ships pages out as well as copying them
    for name in names[1:]:
        durable.start(name, "48MiB")
    rounds = 5
    rebuilds: list[float] = []
    # 3072 keys a node, put again and again: the survivors always have room for two copies.
    with Workload(durable, names, keys=3072) as workload:
        wait_for(lambda: workload.puts > 4000, timeout=30, what="a first 4000 puts")
        for _ in range(rounds):
            victim = rng.choice(names)
            killed = kill(durable, victim)
            wait_redundant(durable, timeout=45)
            rebuilds.append(time.monotonic() - killed)
            acked = workload.acked_by[victim]
            restart(durable, victim)
            wait_redundant(durable, timeout=45)
            wait_for(
                lambda v=victim, n=acked: workload.acked_by[v] > n,
                timeout=30,
                what=f"a persistent put acknowledged by {victim} after its restart (seed {seed})",
            )
        workload.stop()
        lost = workload.lost()
    print(
        f"\nchaos (seed {seed}): {workload.puts} persistent puts ({workload.refused} refused), "
        f"{workload.written()} pages acknowledged at the end, {rounds} kills, {lost} lost or "
        "wrong, ephemeral wrong "
        f"{workload.wrong_ephemeral}; two copies again "
        + ", ".join(f"{t:.1f} s" for t in rebuilds)
        + f" after each kill; errors {dict(workload.errors)}"
    )
    # Calls to a node that is down or still recovering fail as unavailable or late; any other
    # kind is a bug the workload would otherwise have hidden.
    assert set(workload.errors) <= {"Unavailable", "DeadlineExceeded"}, workload.errors
    assert lost == 0
    assert workload.wrong_ephemeral == 0
    assert workload.pool_changes == []


def test_with_etcd_down_for_ten_seconds_puts_keep_their_two_copies(
    node_factory: NodeFactory, private_etcd: EtcdProcess
) -> None:
    cluster = Cluster(node_factory, private_etcd.url, "etcd-down", copies=2)
    try:
        for name in ("A", "B", "C"):
            cluster.start(name, "64MiB")
        a = cluster.clients["A"]
        pool = a.new_pool(persistent=True)
        store_all(a, pool, pages_of(range(8)))

        private_etcd.kill()
        down_since = time.monotonic()
        numbers = pages_of(range(8, 16))
        store_all(a, pool, numbers)  # acknowledged with their copies, without etcd
        time.sleep(max(0.0, 10.0 - (time.monotonic() - down_since)))
        assert not private_etcd.healthy()
        stats = cluster.stats("A")
        assert stats["pers_pages_replicated"] == len(pages_of(range(16)))
        assert stats["peers_written_off"] == 0  # the last view is kept: nobody was written off
        assert stats["pers_pages_at_risk"] == 0
        assert read_back(a, pool, pages_of(range(16)), free=False) == []

        private_etcd.start()
        cluster.start("D", "64MiB")  # membership catches up: D joins and is placed on
        wait_for(lambda: len(cluster.published_free()) == 4, what="etcd lists A, B, C and D again")
        # A's view follows etcd again: D, with the most free bytes, gets the next copies.
        next_object, deadline = 16, time.monotonic() + 15.0
        while cluster.stats("D")["foreign_pers_pages"] == 0:
            assert time.monotonic() < deadline, "no copy reached D within 15 s"
            store_all(a, pool, pages_of([next_object]))
            next_object += 1
        assert read_back(a, pool, pages_of(range(next_object)), free=False) == []
    finally:
        cluster.close()


def test_a_lone_node_cannot_drain_its_persistent_pages_and_says_so_at_once(
    node_factory: NodeFactory,
) -> None:
    node = node_factory.start("alone")
    with SyncClient(node.address, client_name="app") as client:
        pool = client.new_pool(persistent=True)
        assert client.put_many(pool, [(0, n, text_page(n)) for n in range(10)]) == [True] * 10
    started = time.monotonic()
    drained = subprocess.run(
        [RAMSTER, "drain", "--node", node.address, "--timeout", "60"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (drained.returncode, drained.stdout) == (
        1,
        f"node {node.address} not drained: 10 pages are still on it\n",
    ), drained.stderr
    assert time.monotonic() - started < 10  # no peer to move them to: no waiting


def test_a_lone_node_counts_its_pages_at_risk_exactly_and_scans_for_no_copy(
    node_factory: NodeFactory,
) -> None:
    node = node_factory.start("alone")  # persistent_copies 2, the default, and no peer
    with SyncClient(node.address, client_name="app") as client:
        pool = client.new_pool(persistent=True)
        numbers = pages_of(range(32))
        assert store_all(client, pool, numbers) == 0  # acknowledged with one copy each
        assert client.flush_object(pool, 0)
        assert client.flush_page(pool, 1, 0)
        assert client.put(pool, 1, 1, text_page(7))  # put again: still one page
        stats = client.stats()
    # Counted without a scan, and no repair round scanned for a peer that is not there.
    assert (stats["pers_pages_at_risk"], stats["repair_rounds"]) == (len(numbers) - 65, 0)


def test_sigterm_drains_a_node_before_it_exits(durable: Cluster) -> None:
    # A has the most room: the best peer for every copy of B's and C's pages.
    durable.start("A", "128MiB", flags=("--drain-timeout", "20"))
    for name in ("B", "C"):
        durable.start(name, "64MiB")
    pools = {name: durable.clients[name].new_pool(persistent=True) for name in ("A", "B", "C")}
    numbers = pages_of(range(8))
    for name, pool in pools.items():
        store_all(durable.clients[name], pool, numbers)
    assert durable.stats("A")["foreign_pers_pages"] > 0  # A holds copies of B's and C's pages

    durable.clients.pop("A").close()
    before = written_off(durable)
    assert durable.nodes["A"].stop() == 0  # SIGTERM: drain, then stop
    assert "node A drained" in durable.nodes["A"].log()
    wait_for(
        lambda seen=before: all(n > seen[o] for o, n in written_off(durable).items()),
        what="A written off",
    )
    assert at_risk(durable) == {"B": 0, "C": 0}  # nothing was left with a single copy
    for name in ("B", "C"):
        assert read_back(durable.clients[name], pools[name], numbers, free=False) == []


def members_states(cluster: Cluster) -> list[tuple[str, str]]:
    """(name, state) of every row of `ramster members`, the header first (not its rule)."""
    result = subprocess.run(
        [RAMSTER, "members", "--etcd", cluster.etcd_url, "--cluster", cluster.name],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, ""), result.stdout
    rows = [row.split() for row in result.stdout.splitlines() if not row.startswith("─")]
    return [(row[1], row[-1]) for row in rows]


def test_an_undrained_node_takes_copies_again_and_members_shows_each_state(
    durable: Cluster,
) -> None:
    a = durable.start("A", "64MiB", flags=("--drain-timeout", "5"))
    b = durable.start("B", "64MiB")
    assert members_states(durable) == [("name", "state"), ("A", "up"), ("B", "up")]
    drained = run_cli("drain", "--node", a.address, "--timeout", "5")
    assert (drained.returncode, drained.stderr) == (0, "")
    assert members_states(durable) == [("name", "state"), ("A", "draining"), ("B", "up")]
    # A takes no copy while it drains: B's pages have a single copy, on B.
    pool = durable.clients["B"].new_pool(persistent=True)
    numbers = pages_of(range(8))
    store_all(durable.clients["B"], pool, numbers)
    assert (durable.stats("A")["foreign_pers_pages"], at_risk(durable)["B"]) == (0, len(numbers))

    undrained = run_cli("undrain", "--node", a.address)
    assert (undrained.returncode, undrained.stdout, undrained.stderr) == (
        0,
        f"node {a.address} undrained: it takes pages of other nodes again\n",
        "",
    )
    assert members_states(durable) == [("name", "state"), ("A", "up"), ("B", "up")]
    wait_redundant(durable)  # B's repair put the second copies on A
    assert durable.stats("A")["foreign_pers_pages"] == len(numbers)
    again = run_cli("undrain", "--node", b.address)
    assert (again.returncode, again.stdout, again.stderr) == (
        0,
        f"node {b.address} was not draining: nothing to do\n",
        "",
    )

    # An undrain ends a drain still waiting: B cannot move its copies off A (no other node).
    waiting: list[subprocess.CompletedProcess[str]] = []
    drain_call = threading.Thread(
        target=lambda: waiting.append(run_cli("drain", "--node", a.address, "--timeout", "40"))
    )
    drain_call.start()
    try:
        wait_for(lambda: ("A", "draining") in members_states(durable), what="A draining")
        undrained_at = time.monotonic()
        assert run_cli("undrain", "--node", a.address).returncode == 0
    finally:
        drain_call.join()
    assert time.monotonic() - undrained_at < 20  # not the 40 s of its timeout
    assert (waiting[0].returncode, waiting[0].stdout) == (
        1,
        f"node {a.address} not drained: {len(numbers)} pages are still on it\n",
    )
    assert members_states(durable) == [("name", "state"), ("A", "up"), ("B", "up")]

    # SIGTERM drains A before it exits (B cannot move its copies: A waits its drain timeout);
    # an undrain must not keep a node that is leaving.
    durable.clients.pop("A").close()
    stopping = threading.Thread(target=a.stop)
    stopping.start()
    try:
        wait_for(lambda: ("A", "draining") in members_states(durable), what="A draining")
        refused = run_cli("undrain", "--node", a.address)
        assert (refused.returncode, refused.stdout, refused.stderr) == (
            1,
            "",
            "ramster undrain: node 'A' is shutting down: it cannot be undrained\n",
        )
    finally:
        stopping.join()
    assert a.log().count("undrained: it takes") == 2  # the undrains above, not this one
