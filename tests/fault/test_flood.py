"""Floods a real node must survive (issue 12, bounded resources).

Foreign metadata: a node with a small budget in a real etcd cluster; a made-up peer calls its
Peer service as an origin would, naming many origins and epochs, each with many pools and owner
records of long client names and one tiny (same-filled) page each, so nearly everything it makes
the node keep is metadata. Everything a peer can make a node keep counts against the node's
budget: its accounted bytes never pass the budget, its RSS stays within the budget plus what the
interpreter keeps, and an honest client of the node gets its pages back beside the flood.

Connections: 20,000 idle TCP connections from one source address (held by child processes,
`tests.support.flood`) must not lock out a client from another address: one connected before
keeps working, one that connects during the flood gets in within `LOCKOUT_BOUND`.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from ramster.api.v1 import admin_pb2, peer_pb2, tmem_pb2
from ramster.client import SyncClient
from ramster.units import MiB
from tests.support.etcd import EtcdProcess
from tests.support.flood import IdleConnections, open_files
from tests.support.nodes import NodeFactory, NodeProcess
from tests.support.wire import RawNode

BUDGET = 16 * MiB
ORIGINS = 48
"""Made-up origin numbers; each sends `EPOCHS` epochs of one request of `POOLS` pools: 196,608
pools of one page each, which took 183 MiB of RSS before they were charged to the budget."""
EPOCHS = 4
POOLS = 1024
RSS_SLACK = 48 * MiB
"""What RSS may grow beyond the budget: memory the node frees but keeps (CPython keeps the arenas
of freed small objects, such as the 2,048 messages each flood request is parsed into; gRPC its
buffers), measured at 23 MiB for this flood and 25 MiB for one three times its size: twice that,
for a loaded machine. A quarter of the 183 MiB the flood took unbounded."""


@pytest.fixture
def holder(node_factory: NodeFactory, etcd: EtcdProcess, etcd_cluster: str) -> NodeProcess:
    flags = ("--etcd", etcd.url, "--cluster", etcd_cluster)
    return node_factory.start("holder", memory=f"{BUDGET // MiB}MiB", extra_flags=flags)


@pytest.fixture
def wire(holder: NodeProcess) -> Iterator[RawNode]:
    with RawNode(holder.address, timeout=30.0) as raw:
        yield raw


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def flood_request(number: int, epoch: str) -> peer_pb2.PeerPutRequest:
    """One page in each of `POOLS` pools of origin `number` at `epoch`, each pool with an owner
    record of a 256-character client name; every page one fill byte (nearly free to store)."""
    fill = b"\x5a"
    request = peer_pb2.PeerPutRequest(origin=peer_pb2.Origin(node_number=number, epoch=epoch))
    for uid in range(1, POOLS + 1):
        request.pages.append(
            peer_pb2.RemotePage(
                pool=uid,
                persistent=True,
                oid=tmem_pb2.Oid(word0=uid),
                index=0,
                version=1,
                data=fill,
                encoding=tmem_pb2.PAGE_ENCODING_SAME_FILLED,
                page_size=4096,
                checksum=zlib.crc32(fill),
            )
        )
        request.pools.append(
            peer_pb2.PoolRecord(
                pool=uid,
                client=f"{uid:04d}" + "c" * 252,
                pool_id=0,
                persistent=True,
                page_size=4096,
            )
        )
    return request


def test_a_foreign_metadata_flood_stays_within_the_budget_beside_an_honest_client(
    holder: NodeProcess, wire: RawNode
) -> None:
    """The honest client's pages, stored before the flood, come back after it; a client that
    comes after it gets a pool (the flood's origins do not count against the node's clients)."""
    assert holder.process is not None
    pages = {n: bytes([n]) * 2048 + bytes(range(256)) * 8 for n in range(64)}
    with SyncClient(holder.address, client_name="honest") as honest:
        pool = honest.new_pool(persistent=True)
        assert honest.put_many(pool, [(1, n, data) for n, data in pages.items()]) == [True] * 64
        before = rss_bytes(holder.process.pid)
        codes: set[grpc.StatusCode] = set()
        for number in range(2, 2 + ORIGINS):
            for e in range(EPOCHS):
                epoch = f"{0x62A0B1C2D3E4F + number:013x}{e:03x}"
                answer = wire.call("/ramster.api.v1.Peer/PutPages", flood_request(number, epoch))
                codes.add(answer.code)
        grown = rss_bytes(holder.process.pid) - before
        stats = honest.stats()
        assert honest.get_many(pool, [(1, n) for n in pages]) == list(pages.values())
    with SyncClient(holder.address, client_name="late") as late:
        assert late.new_pool() == 0
    assert codes == {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert stats["used_bytes"] <= stats["memory_bytes"] == BUDGET
    assert grown <= BUDGET + RSS_SLACK, f"RSS grew {grown / MiB:.1f} MiB"


IDLE_CONNECTIONS = 20_000
"""The issue's flood: more than the node's own descriptor limit here (20,000), so before the
node bounded connections per source it could accept no other client at all."""
FLOOD_SOURCE = "127.0.0.2"
"""The flood's source address; the honest clients connect from 127.0.0.1."""
LOCKOUT_BOUND = 5.0
"""The longest a new client may find the node unreachable during the flood: the node cuts a
source's connections past its limit every `ServerLimits.guard_interval` (1 s), one refused
attempt takes up to its 2 s timeout, and a loaded 2-core machine needs the rest."""
WINDOW = 3 * LOCKOUT_BOUND
"""Seconds new clients keep connecting after the whole flood is open."""


def first_call(address: str) -> str:
    """A new client's first call (over a connection of its own: grpc would share the existing
    one of another channel to the node); its refusal, or "" if it was answered."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    with grpc.insecure_channel(address, options=options) as channel:
        stats = channel.unary_unary("/ramster.api.v1.Admin/GetStats")
        try:
            stats(admin_pb2.GetStatsRequest().SerializeToString(), timeout=2.0)
        except grpc.RpcError as error:
            return f"{error.code().name}: {(error.details() or '')[:160]}"
    return ""


def longest_lockout(address: str, until: Callable[[], bool]) -> tuple[float, int, str]:
    """New clients call the node one after another until `until()`: the longest stretch
    without an answer, how many answered, and the last refusal."""
    last_answer = time.monotonic()
    longest, answered, refusal = 0.0, 0, ""
    while not until():
        failed = first_call(address)
        if failed:
            refusal = failed
        else:
            answered += 1
            last_answer = time.monotonic()
        longest = max(longest, time.monotonic() - last_answer)
        time.sleep(0.2)  # a new client every 0.2 s: the node's time goes to the flood
    return longest, answered, refusal


def test_idle_connections_from_one_source_do_not_lock_out_other_clients(
    node_factory: NodeFactory,
) -> None:
    node = node_factory.start("node1")
    assert node.process is not None
    pid = node.process.pid
    host, port = node.address.rsplit(":", 1)
    flood = IdleConnections(host, int(port), FLOOD_SOURCE, IDLE_CONNECTIONS)
    opened: list[float] = []
    opener = threading.Thread(target=lambda: opened.append(flood.open() and time.monotonic()))
    with SyncClient(node.address, client_name="before") as before:
        pool = before.new_pool()
        opener.start()
        try:
            lockout, answered, refusal = longest_lockout(
                node.address, lambda: bool(opened) and time.monotonic() > opened[0] + WINDOW
            )
            fds = open_files(pid)
            data = bytes(range(256)) * 16
            assert before.put(pool, 1, 0, data)
            assert before.get(pool, 1, 0) == data
        finally:
            opener.join()
            flood.close()
    print(
        f"{flood!r}: node fds {fds}; {answered} new clients answered, longest lockout "
        f"{lockout:.2f} s"
    )
    assert lockout <= LOCKOUT_BOUND, f"locked out for {lockout:.1f} s: {refusal}"
    assert "File descriptor limit reached" not in node.log()
