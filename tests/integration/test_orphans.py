"""Nodes that leave for good (issue 10 item 12): after `origin_grace` out of the cluster, holders
drop the pages they keep for the node and origins the flushes they queued for it; an operator's
`ramster forget-node` does it at once, for a node that is not up. A node that merely restarts within
the grace loses nothing. Real etcd, real nodes; the pure part is tests/unit/remote/test_absence.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from nodemanager.cli import list_members, write_param
from ramster.client import FailedPrecondition, InvalidArgument, NotFound, SyncClient
from tests.support.cluster import (
    Cluster,
    done_shipping,
    pages_of,
    read_back,
    store_all,
)
from tests.support.etcd import EtcdProcess
from tests.support.nodes import NodeFactory, run_cli
from tests.support.processes import free_port, wait_for

GRACE = 10


@pytest.fixture
def cluster(node_factory: NodeFactory, etcd: EtcdProcess, etcd_cluster: str) -> Iterator[Cluster]:
    running = Cluster(node_factory, etcd.url, etcd_cluster)
    yield running
    running.close()


def names_in_view(cluster: Cluster) -> list[str]:
    return [m.name for m in asyncio.run(list_members(cluster.etcd_url, cluster.name))]


def test_a_node_gone_for_origin_grace_is_let_go_of_and_one_back_in_time_loses_nothing(
    cluster: Cluster,
) -> None:
    asyncio.run(write_param(cluster.etcd_url, cluster.name, "origin_grace", str(GRACE)))
    node_a = cluster.start("A", "4MiB", listen=f"127.0.0.1:{free_port()}")
    node_b = cluster.start("B", "16MiB")
    a, b = cluster.clients["A"], cluster.clients["B"]
    wait_for(lambda: b.params()["origin_grace"] == str(GRACE), what=f"B has origin_grace {GRACE}")
    pool = a.new_pool(persistent=True)
    numbers = pages_of(range(48))  # about 6 MiB packed: A ships a part to B
    store_all(a, pool, numbers)
    done_shipping(a.stats)
    held = b.stats()["foreign_pers_pages"]
    assert held > 0

    # A restarts: out of the view for a moment, well within the grace. Every page B held comes
    # back (those only in A's memory died with it: this cluster keeps one copy).
    node_a.kill()
    wait_for(lambda: names_in_view(cluster) == ["B"], what="A out of the view")
    node_a.start()
    a.close()
    a = cluster.clients["A"] = SyncClient(node_a.address, client_name="test-A")
    assert a.stats()["pers_pages_recovered"] == held
    missing = read_back(a, a.new_pool(persistent=True), numbers, free=False)
    assert len(numbers) - len(missing) == held
    assert b.stats()["origins_forgotten"] == 0

    # A, gone for good: once out of B's view for the grace, B drops every page it held for A.
    done_shipping(a.stats)
    held = b.stats()["foreign_pers_pages"]
    node_a.kill()
    killed = time.monotonic()
    wait_for(lambda: b.stats()["origins_forgotten"] == 1, timeout=GRACE + 20, what="B let go")
    assert time.monotonic() - killed >= GRACE
    stats = b.stats()
    assert (stats["foreign_pers_pages"], stats["foreign_pages_forgotten"]) == (0, held)
    assert stats["remote_flushes_forgotten"] == 0
    assert (
        node_b.log().count(
            f"node 1 has been out of the cluster for origin_grace ({GRACE} s): dropped the {held} "
            "pages held for it and the 0 flushes queued for it; 0 persistent pages only it held "
            "are lost"
        )
        == 1
    )

    # B, gone for good from A's view: A lets go of the flush it queued for B's copies.
    node_a.start()
    a.close()
    a = cluster.clients["A"] = SyncClient(node_a.address, client_name="test-A")
    pool = a.new_pool(persistent=True)
    store_all(a, pool, numbers)
    wait_for(lambda: b.stats()["foreign_pers_pages"] > 0, what="A shipped pages to B again")
    done_shipping(a.stats)
    node_b.kill()  # while A ships nothing: its only queued flush is the pool's
    a.destroy_pool(pool)  # flushes B's copies should it come back: queued meanwhile
    killed = time.monotonic()
    wait_for(lambda: a.stats()["origins_forgotten"] == 1, timeout=GRACE + 20, what="A let go")
    assert time.monotonic() - killed >= GRACE
    stats = a.stats()
    assert (stats["remote_flushes_forgotten"], stats["foreign_pages_forgotten"]) == (1, 0)


def test_forget_node_lets_go_of_a_node_that_left_at_once_and_refuses_one_that_is_up(
    cluster: Cluster, etcd: EtcdProcess
) -> None:
    node_a = cluster.start("A", "4MiB")
    cluster.start("B", "16MiB")
    node_c = cluster.start("C", "16MiB")
    a, b, c = (cluster.clients[n] for n in "ABC")
    pool = a.new_pool(persistent=True)
    store_all(a, pool, pages_of(range(48)))
    done_shipping(a.stats)
    held = b.stats()["foreign_pers_pages"] + c.stats()["foreign_pers_pages"]
    assert held > 0

    with pytest.raises(FailedPrecondition) as up:
        c.forget_node("A")
    assert up.value.message == (
        f"node 'A' (number 1) is up at {node_a.address}: only a node that has left can be "
        "forgotten (stop it first)"
    )
    with pytest.raises(InvalidArgument) as invalid:
        c.forget_node("x" * 5000)
    assert invalid.value.message == (
        f"name '{'x' * 64}'... (5000 characters) is invalid: expected 1-253 letters, digits, "
        "'.', '_' or '-', starting alnum"
    )
    with pytest.raises(NotFound) as unknown:
        c.forget_node("Z")
    assert unknown.value.message == f"no node called 'Z' is known in cluster '{cluster.name}'"

    # A leaves; the default origin_grace is an hour: B and C keep its pages...
    node_a.kill()
    wait_for(lambda: names_in_view(cluster) == ["B", "C"], what="A out of the view")
    assert b.stats()["foreign_pers_pages"] + c.stats()["foreign_pers_pages"] == held
    # ... until an operator forgets it, through C: every holder drops them.
    result = run_cli("forget-node", "A", "--node", node_c.address)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "node A (number 1) forgotten: every node drops the pages it held for it; its number is "
        "retired\n"
    )
    wait_for(
        lambda: b.stats()["foreign_pers_pages"] + c.stats()["foreign_pers_pages"] == 0,
        what="B and C dropped A's pages",
    )
    stats = {n: cluster.stats(n) for n in "BC"}
    assert sum(stats[n]["foreign_pages_forgotten"] for n in "BC") == held
    # Each holder lets go of A once: one that held its pages surely, one that held only an
    # emptied pool of A's (its pages moved or flushed) may too.
    forgotten = {n: stats[n]["origins_forgotten"] for n in "BC"}
    assert set(forgotten.values()) <= {0, 1}
    assert all(forgotten[n] == 1 for n in "BC" if stats[n]["foreign_pages_forgotten"] > 0)

    # The name is released and the number retired: A started again is a new node, number 4.
    prefix = f"/ramster/{cluster.name}/"
    assert etcd.ctl("get", f"{prefix}names/A") == ""
    assert etcd.ctl("get", f"{prefix}forgotten/1") == f"{prefix}forgotten/1\nA\n"
    node_a.start()
    assert node_a.ready["number"] == 4
    with pytest.raises(FailedPrecondition):
        c.forget_node("A")
