"""The write-back of an NBD export with two copies, on real nodes (docs/nbd.md): a WRITE is
acknowledged before its copy reaches the peer, a FLUSH only once the peer holds the copies of
every write before it, and a block rewritten while its first copy was on its way comes back
new from the peer after its node died.

A reaches its peer B only through a `DelayProxy` (B advertises the proxy's address), slowed
while the test writes, so the copies are still on their way when the test looks.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from nodemanager.cli import list_members
from ramster.launcher import free_port
from ramster.nbd.protocol import Command, Reply
from tests.support.cluster import Cluster, text_page
from tests.support.delay_proxy import DelayProxy
from tests.support.etcd import EtcdProcess
from tests.support.nbd import RawClient
from tests.support.nodes import NodeFactory, NodeProcess, run_cli
from tests.support.processes import wait_for

DELAY = 2.0
"""Seconds each chunk towards B waits while the test writes: far longer than a write's answer
and a look at B's counters take."""


def create_disk(node: NodeProcess) -> None:
    done = run_cli("export", "create", "disk", "--size", "1MiB", "--node", node.address)
    assert done.returncode == 0, done.stderr


def members(etcd: EtcdProcess, cluster: str) -> list[str]:
    return sorted(member.name for member in asyncio.run(list_members(etcd.url, cluster)))


def connected(socket_path: Path) -> RawClient:
    raw = RawClient(socket_path)
    raw.greet()
    assert raw.go("disk")[-1].reply == Reply.ACK
    return raw


def test_a_flush_waits_for_the_copies_and_a_rewrite_in_flight_comes_back_new_from_the_peer(
    node_factory: NodeFactory, etcd: EtcdProcess, etcd_cluster: str, tmp_path: Path
) -> None:
    cluster = Cluster(node_factory, etcd.url, etcd_cluster, copies=2)
    socket_path = tmp_path / "nbd.sock"
    b_listen = f"127.0.0.1:{free_port()}"
    old, new, other = text_page(1), text_page(2), text_page(3)
    with DelayProxy(b_listen) as proxy:
        try:
            node_a = cluster.start(
                "A",
                "32MiB",
                listen=f"127.0.0.1:{free_port()}",
                flags=("--nbd", f"unix://{socket_path}"),
            )
            create_disk(node_a)
            cluster.start("B", "64MiB", listen=b_listen, flags=("--advertise", proxy.address))
            wait_for(lambda: members(etcd, etcd_cluster) == ["A", "B"], what="A and B in the view")
            raw = connected(socket_path)
            raw.request(Command.WRITE, 0, 4096, other, cookie=1)
            raw.request(Command.FLUSH, cookie=2)
            assert {raw.reply()[1], raw.reply()[1]} == {1, 2}
            assert cluster.stats("B")["foreign_pers_pages"] == 1

            proxy.set_delay(up=DELAY)
            raw.request(Command.WRITE, 4096, 4096, old, cookie=3)
            assert raw.reply() == (0, 3, b"")
            raw.request(Command.WRITE, 4096, 4096, new, cookie=4)
            assert raw.reply() == (0, 4, b"")
            assert cluster.stats("B")["foreign_pers_pages"] == 1  # both copies on their way
            raw.request(Command.FLUSH, cookie=5)
            assert raw.reply() == (0, 5, b"")
            assert cluster.stats("B")["foreign_pers_pages"] == 2  # the newest of block 1 kept
            proxy.set_delay(up=0.0)
            raw.close()

            node_a.kill()
            wait_for(lambda: members(etcd, etcd_cluster) == ["B"], what="A out of the view")
            node_a.start()
            create_disk(node_a)  # claims the pool recovered from B
            raw = connected(socket_path)
            raw.request(Command.READ, 0, 8192, cookie=6)
            assert raw.reply(8192) == (0, 6, other + new)
            raw.close()
        finally:
            cluster.close()
