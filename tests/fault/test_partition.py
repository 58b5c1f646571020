"""A real cluster partitioned by the network (docs/design.md §6, §7): etcd and three `ramster node`
processes, each on a host of its own in a `NetnsLab` (network namespaces on a private bridge),
and one host cut off with nftables while everything keeps running.

What is checked: every host sees the three members; once node 4 is cut off, calls to it fail
within their deadline (never hang), the others' view drops it within a bound of its 3 s lease,
nodes 2 and 3 rebuild the copies it held and go on storing and reading back persistent pages
byte-exact; after `heal` node 4 is back in every view under the same number and epoch (the same
process, not a new node) with its pages, and the copies written off meanwhile are flushed from
it. And the §6 promise for pages a node shipped to the cut-off peer: read from their other copy.

Clients, ``ramster members`` and etcdctl run inside the hosts' namespaces (``ip netns exec``):
the test process itself stays in the root namespace, which the lab never connects. Root only:
skipped, with the reason, where a lab cannot be built (`tests.support.netns.available`).

Not here: partitions from etcd alone on loopback (tests/integration/test_cluster.py, `EtcdLink`),
slow peers (`test_slow_peer.py`), the lab itself (`test_netns_lab.py`).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ramster.launcher import etcd_argv
from tests.support.etcd import BIN, EtcdProcess
from tests.support.netns import Host, NetnsError, NetnsLab, available
from tests.support.nodes import ETCDS, NODES, RAMSTER, NodeProcess, table_rows
from tests.support.processes import ManagedProcess
from tests.support.tools import require

NODE_PORT = 7470  # every host is a fresh namespace: its ports are all free
ETCD_PORT, ETCD_PEER_PORT = 2379, 2380
CLUSTER = "partition"
READY_TIMEOUT = 20.0
CALL_TIMEOUT = 3.0
"""Seconds every client call may take (the client's deadline)."""
VIEW_TIMEOUT = 12.0
"""Seconds a member view may take to drop a cut-off node (lease TTL 3 s) or to take it back."""
SUBPROCESS_SLACK = 10.0
"""Seconds on top of a client's own deadlines for one client process (start-up, imports)."""

NODE_ENVIRONMENT = {**os.environ, "RAMSTER_DRAIN_TIMEOUT": "0"}
"""Nodes stop without draining: at teardown every node stops at once, and a drain would wait
for peers that are stopping too."""

Member = tuple[int, str, str]
"""(number, name, address) of one member, as ``ramster members`` lists it."""

CLIENT = r"""
import json, random, sys, time
from ramster.client import RamsterError, SyncClient

WORDS = [f"{stem}{n}" for n in range(40) for stem in ("alpha", "beta", "gamma", "delta", "tau")]

def page(n):
    # distinct, deterministic text that lz4 packs about 2:1
    text = f"page {n:08d} " + " ".join(random.Random(n).choices(WORDS, k=700))
    return text.encode()[:4096]

def spans(numbers):
    out = []
    for n in sorted(numbers):
        if out and out[-1][1] == n - 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return out

def numbers(spans):
    return [n for first, last in spans for n in range(first, last + 1)]

spec = json.loads(sys.argv[1])
answer = {}
started = time.monotonic()
try:
    with SyncClient(spec["target"], "partition-test", timeout=spec["timeout"]) as client:
        pool = spec.get("pool")
        if pool is None and ("put" in spec or "get" in spec):
            pool = client.new_pool(persistent=True)
        answer["pool"] = pool
        if "put" in spec:
            pending, stored = numbers(spec["put"]), []
            deadline = time.monotonic() + spec.get("retry_for", 0.0)
            while True:
                refused = []
                for start in range(0, len(pending), 256):
                    batch = pending[start : start + 256]
                    results = client.put_many(pool, [(n // 64, n % 64, page(n)) for n in batch])
                    for n, ok in zip(batch, results):
                        (stored if ok else refused).append(n)
                pending = refused
                if not pending or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            answer["stored"], answer["refused"] = spans(stored), spans(pending)
        if "get" in spec:
            wanted = numbers(spec["get"])
            got = client.get_many(pool, [(n // 64, n % 64) for n in wanted])
            pairs = list(zip(wanted, got))
            answer["missing"] = spans(n for n, data in pairs if data is None)
            answer["wrong"] = spans(n for n, data in pairs if data is not None and data != page(n))
        if spec.get("stats"):
            answer["stats"] = client.stats()
except RamsterError as error:
    answer["error"] = f"{type(error).__name__}: {error}"
answer["seconds"] = time.monotonic() - started
print(json.dumps(answer))
"""


class NetnsEtcd(EtcdProcess):
    """`EtcdProcess` inside `host`'s namespace, serving clients at the host's address."""

    def __init__(self, directory: Path, host: Host) -> None:
        super().__init__(directory, "etcd")
        self.host = host
        self.client_port, self.peer_port = ETCD_PORT, ETCD_PEER_PORT

    @property
    def url(self) -> str:
        return f"http://{self.host.address}:{self.client_port}"

    def start(self) -> NetnsEtcd:
        client_flags = ("--listen-client-urls=", "--advertise-client-urls=")
        argv = [
            f"{arg.split('=')[0]}={self.url}" if arg.startswith(client_flags) else arg
            for arg in etcd_argv(self.name, self.directory / "data", ETCD_PORT, ETCD_PEER_PORT)
        ]
        self.process = ManagedProcess(
            self.name, self.host.argv([*argv, "--unsafe-no-fsync"]), self.log_path
        )
        deadline = time.monotonic() + READY_TIMEOUT
        while not self.healthy():
            self.process.check_alive()
            if time.monotonic() > deadline:
                self.process.kill()
                raise TimeoutError(f"etcd not healthy in {READY_TIMEOUT} s:\n{self.log()}")
            time.sleep(0.05)
        return self

    def healthy(self) -> bool:
        return self._etcdctl("endpoint", "health").returncode == 0

    def ctl(self, *args: str) -> str:
        result = self._etcdctl(*args)
        if result.returncode != 0:
            raise RuntimeError(f"etcdctl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def _etcdctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [str(BIN / "etcdctl"), f"--endpoints={self.url}", "--command-timeout=2s", *args]
        return self.host.run(argv, timeout=10)


class NetnsNode(NodeProcess):
    """`NodeProcess` inside `host`'s namespace, listening on the host's address."""

    def __init__(self, directory: Path, host: Host, etcd_url: str, memory: str) -> None:
        # --insecure: the lab's own network, which only its namespaces reach (no TLS here).
        flags = ("--etcd", etcd_url, "--cluster", CLUSTER, "--insecure")
        name = f"node{host.number}"
        super().__init__(directory, name, f"{host.address}:{NODE_PORT}", memory, extra_flags=flags)
        self.host = host

    @property
    def number(self) -> int:
        return int(self.ready["number"])

    @property
    def member(self) -> Member:
        return self.number, self.name, self.address

    def start(self) -> NetnsNode:
        """As `tests.support.nodes.start_node`, with ``ip netns exec`` in front."""
        ready = self.directory / f"{self.name}.ready.json"
        ready.unlink(missing_ok=True)
        argv = [RAMSTER, "node", "--listen", self.listen, "--name", self.name]
        argv += ["--ready-file", str(ready), *self.flags]
        self.process = ManagedProcess(
            f"node {self.name}", self.host.argv(argv), self.log_path, env=NODE_ENVIRONMENT
        )
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready.exists():
            self.process.check_alive()
            if time.monotonic() > deadline:
                self.process.kill()
                raise TimeoutError(f"{self.name} not ready in {READY_TIMEOUT} s:\n{self.log()}")
            time.sleep(0.02)
        self.ready = json.loads(ready.read_text())
        return self


class Partition:
    """Host 1 runs etcd, hosts 2-4 run node2-node4; clients run on host 2."""

    def __init__(self, lab: NetnsLab, etcd: NetnsEtcd, nodes: dict[int, NetnsNode]) -> None:
        self.lab = lab
        self.etcd = etcd
        self.nodes = nodes

    def __repr__(self) -> str:
        return f"<Partition {self.lab!r} nodes={sorted(self.nodes)}>"

    def client(self, node: int, **spec: Any) -> dict[str, Any]:
        """Run `CLIENT` on host 2 against node `node`: its answer (pool, stored, refused,
        missing, wrong, stats, error, seconds). Page spans are ``[[first, last], ...]``."""
        spec = {"target": self.nodes[node].address, "timeout": CALL_TIMEOUT, **spec}
        budget = spec.get("retry_for", 0.0) + 4 * CALL_TIMEOUT + SUBPROCESS_SLACK
        argv = [sys.executable, "-c", CLIENT, json.dumps(spec)]
        result = self.lab.host(2).run(argv, timeout=budget)
        try:
            answer: dict[str, Any] = json.loads(result.stdout)
        except ValueError:
            raise AssertionError(
                f"client of node{node} exited {result.returncode}: {result.stderr[-3000:]}"
            ) from None
        return answer

    def wait_stat(self, nodes: tuple[int, ...], name: str, value: int) -> None:
        """Wait, at most `VIEW_TIMEOUT` * 2, until counter `name` is `value` on every node."""
        deadline = time.monotonic() + 2 * VIEW_TIMEOUT
        while True:
            answers = {n: self.client(n, stats=True) for n in nodes}
            seen = {n: a["stats"][name] if "stats" in a else a for n, a in answers.items()}
            if all(v == value for v in seen.values()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} is {seen}, not {value}, after {2 * VIEW_TIMEOUT} s")
            time.sleep(0.5)

    def published(self, node: NetnsNode) -> dict[str, Any]:
        """What etcd holds for `node` now (its ``nodes/<number>`` key)."""
        key = f"/ramster/{CLUSTER}/nodes/{node.number}"
        info: dict[str, Any] = json.loads(self.etcd.ctl("get", key, "--print-value-only"))
        return info

    def members(self, seen_from: int) -> list[Member] | None:
        """The members as ``ramster members`` on host `seen_from` lists them (None: failed)."""
        argv = [RAMSTER, "members", "--etcd", self.etcd.url, "--cluster", CLUSTER]
        result = self.lab.host(seen_from).run(argv, timeout=SUBPROCESS_SLACK)
        if result.returncode != 0:
            return None
        rows = table_rows(result.stdout)
        return [(int(row[0]), row[1], row[2]) for row in rows]

    def wait_members(self, seen_from: int, expected: list[Member]) -> float:
        """Seconds until host `seen_from` lists exactly `expected`, at most `VIEW_TIMEOUT`."""
        started = time.monotonic()
        while (seen := self.members(seen_from)) != sorted(expected):
            if time.monotonic() - started > VIEW_TIMEOUT:
                raise AssertionError(
                    f"host {seen_from} lists {seen}, not {sorted(expected)}, after {VIEW_TIMEOUT} s"
                )
            time.sleep(0.1)
        return time.monotonic() - started


def start_partition(
    lab: NetnsLab, directory: Path, request: pytest.FixtureRequest, memory: dict[int, str]
) -> Partition:
    """etcd on host 1 and a node on each of hosts 2-4 (in that order, so numbers are 1-3)."""
    etcd = NetnsEtcd(directory, lab.host(1))
    request.node.stash.setdefault(ETCDS, []).append(etcd)
    etcd.start()
    nodes: dict[int, NetnsNode] = {}
    for number in (2, 3, 4):
        node = NetnsNode(directory, lab.host(number), etcd.url, memory.get(number, "64MiB"))
        request.node.stash.setdefault(NODES, []).append(node)
        nodes[number] = node.start()
    return Partition(lab, etcd, nodes)


@pytest.fixture
def lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NetnsLab]:
    """Four hosts; at the end every host is healed, then every process this test started is
    stopped by PID (nodes first, so they leave etcd cleanly), then every namespace deleted."""
    require(available())
    with NetnsLab(4) as running:
        try:
            yield running
        finally:
            for host in running.hosts:
                with contextlib.suppress(NetnsError):  # stop the processes whatever happens
                    running.heal(host)
            nodes = request.node.stash.get(NODES, [])
            for node in nodes:  # SIGTERM to every one first: they stop side by side
                if node.process is not None and node.process.proc.poll() is None:
                    node.process.proc.terminate()
            for node in nodes:
                node.stop()
            for etcd in request.node.stash.get(ETCDS, []):
                etcd.stop()


def problems(answer: dict[str, Any]) -> dict[str, Any]:
    """What went wrong in a client's answer: its error, refused, missing or wrong pages."""
    return {key: answer[key] for key in ("error", "refused", "missing", "wrong") if answer.get(key)}


def test_a_cut_off_node_leaves_the_view_while_the_others_serve_and_rejoins_after_heal(
    lab: NetnsLab, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    cluster = start_partition(lab, tmp_path, request, memory={})
    four = cluster.nodes[4]
    everyone = [cluster.nodes[n].member for n in (2, 3, 4)]
    assert [number for number, _, _ in everyone] == [1, 2, 3]
    for host in (2, 3, 4):
        cluster.wait_members(host, everyone)

    on2 = cluster.client(2, put=[[0, 999]], get=[[0, 999]])
    on3 = cluster.client(3, put=[[0, 499]], get=[[0, 499]])
    on4 = cluster.client(4, put=[[0, 499]], get=[[0, 499]])
    assert [problems(answer) for answer in (on2, on3, on4)] == [{}, {}, {}]

    lab.cut_off(lab.host(4))
    unreachable = cluster.client(4, pool=on4["pool"], get=[[0, 9]])
    assert unreachable.get("error", "").startswith(("Unavailable", "DeadlineExceeded")), unreachable
    assert unreachable["seconds"] < CALL_TIMEOUT + 1, "a call to a cut-off node must not hang"

    # While node 4 is still in the view, what node 2 acknowledges reads back exact, in time
    # (a put may be refused: a normal answer for a persistent put).
    during = cluster.client(2, pool=on2["pool"], put=[[1000, 1499]], get=[[0, 999]])
    assert problems(during).keys() <= {"refused"}, during
    assert during["seconds"] < 2 * CALL_TIMEOUT, during

    others = [member for member in everyone if member != four.member]
    cluster.wait_members(2, others)  # within VIEW_TIMEOUT of the cut, its lease being 3 s
    cluster.wait_members(3, others)

    # The copies node 4 held are rebuilt on nodes 2 and 3.
    cluster.wait_stat((2, 3), "pers_pages_at_risk", 0)

    # Without node 4, nodes 2 and 3 store every new page and read every acknowledged one back.
    stored2 = [[0, 999], *during["stored"], [1500, 1999]]
    after2 = cluster.client(2, pool=on2["pool"], put=[[1500, 1999]], get=stored2)
    after3 = cluster.client(3, pool=on3["pool"], put=[[500, 999]], get=[[0, 999]])
    assert [problems(after2), problems(after3)] == [{}, {}]
    assert four.process is not None and four.process.proc.poll() is None, "node 4 runs on"

    lab.heal(lab.host(4))
    for host in (2, 3, 4):
        cluster.wait_members(host, everyone)  # same number, name and address: node 4 is back
    assert cluster.published(four)["epoch"] == four.epoch  # the same process, not a new node
    back = cluster.client(4, pool=on4["pool"], get=[[0, 499]])
    final2 = cluster.client(2, pool=on2["pool"], get=stored2)
    assert [problems(back), problems(final2)] == [{}, {}]
    # Rejoined cleanly: the copies written off while it was away are flushed from node 4, and
    # every page has its two copies.
    cluster.wait_stat((4,), "foreign_pers_pages", 0)
    cluster.wait_stat((2, 3, 4), "pers_pages_at_risk", 0)


def test_pages_shipped_to_a_cut_off_node_are_read_from_their_other_copy(
    lab: NetnsLab, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    cluster = start_partition(lab, tmp_path, request, memory={2: "4MiB"})
    four = cluster.nodes[4]
    everyone = [cluster.nodes[n].member for n in (2, 3, 4)]
    for host in (2, 3, 4):
        cluster.wait_members(host, everyone)
    argv = [RAMSTER, "param", "set", "remote_target", str(four.number)]
    result = lab.host(2).run([*argv, "--node", cluster.nodes[2].address])
    assert result.returncode == 0, result.stderr

    # 3,000 pages of about 2 KB packed: more than 4 MiB, so node 2 ships some to node 4.
    pages = [[0, 2999]]
    put = cluster.client(2, put=pages, retry_for=20.0, get=pages)
    assert problems(put) == {}, put
    held = cluster.client(4, stats=True)["stats"]["foreign_pers_pages"]
    assert held > 0, "node 4 holds none of node 2's pages"

    lab.cut_off(lab.host(4))
    during = cluster.client(2, pool=put["pool"], get=pages)
    cluster.wait_members(2, [member for member in everyone if member != four.member])
    without = cluster.client(2, pool=put["pool"], get=pages)
    for answer in (during, without):  # never wrong, never hung
        assert problems(answer).keys() <= {"missing"}, answer
        assert answer["seconds"] < 2 * CALL_TIMEOUT, answer

    lab.heal(lab.host(4))
    for host in (2, 3, 4):
        cluster.wait_members(host, everyone)
    healed = cluster.client(2, pool=put["pool"], get=pages)
    assert problems(healed) == {}, healed

    assert (during["missing"], without["missing"]) == ([], []), (
        f"of {held} pages node 4 held for node 2, some were out of reach while it was cut off"
    )
