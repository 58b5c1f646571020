"""etcd's backup and recovery as docs/operations.md describes it: `etcdctl snapshot save` while
the cluster runs, then etcd's data lost and restored from the snapshot (`snapshot restore` into a
fresh data directory). A node restarted afterwards under its name gets its number back from
``names/<name>`` and takes back its pages from its peers by the epoch recorded under
``epochs/<number>/``: no acknowledged persistent page is lost. Without the snapshot (etcd
started empty) the epoch record is gone, and the restarted node takes nothing back: what the
guide says losing etcd costs.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ramster.client import SyncClient
from tests.support.cluster import Cluster, pages_of, read_back, store_all
from tests.support.etcd import EtcdProcess
from tests.support.nodes import NodeFactory


@pytest.fixture
def cluster(node_factory: NodeFactory, private_etcd: EtcdProcess) -> Iterator[Cluster]:
    running = Cluster(node_factory, private_etcd.url, "backup", copies=2)
    yield running
    running.close()


@pytest.mark.parametrize("restored", [True, False], ids=["from-snapshot", "empty"])
def test_a_node_restarted_after_etcd_lost_its_data_takes_its_pages_back_only_from_a_snapshot(
    cluster: Cluster, private_etcd: EtcdProcess, tmp_path: Path, restored: bool
) -> None:
    for name in ("A", "B"):
        cluster.start(name, "64MiB")
    a = cluster.clients["A"]
    pool = a.new_pool(persistent=True)
    numbers = pages_of(range(8))
    store_all(a, pool, numbers)
    assert cluster.foreign_pers("B") == {"B": len(numbers)}  # B holds every second copy
    number = cluster.stats("A")["node_number"]
    epoch = cluster.nodes["A"].epoch
    snapshot = tmp_path / "etcd-backup.db"
    private_etcd.ctl("snapshot", "save", str(snapshot))

    # A goes, and etcd loses its data: restored from the snapshot into a fresh directory, or not.
    cluster.nodes["A"].kill()
    cluster.clients.pop("A").close()
    private_etcd.kill()
    data = private_etcd.directory / "data"
    shutil.rmtree(data)
    if restored:
        peer = f"http://127.0.0.1:{private_etcd.peer_port}"
        private_etcd.ctl(
            "snapshot", "restore", str(snapshot), f"--data-dir={data}",
            f"--name={private_etcd.name}", f"--initial-cluster={private_etcd.name}={peer}",
            f"--initial-advertise-peer-urls={peer}",
        )  # fmt: skip
    private_etcd.start()
    keys = set(private_etcd.ctl("get", "--prefix", "--keys-only", "/ramster/backup/").split())
    recorded = {"/ramster/backup/names/A", f"/ramster/backup/epochs/{number}/{epoch}"}
    assert (recorded <= keys) == restored

    node = cluster.nodes["A"].start()
    restarted = cluster.clients["A"] = SyncClient(node.address, client_name="test-A")
    stats = cluster.stats("A")
    recovered = len(numbers) if restored else 0
    assert (stats["node_number"], stats["pers_pages_recovered"]) == (number, recovered)
    # The recovered pool claimed again; without one, a new empty pool (the same first id).
    assert restarted.new_pool(persistent=True) == pool
    lost = [] if restored else numbers
    assert read_back(restarted, pool, numbers, free=False) == lost
