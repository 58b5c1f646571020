"""The lease TTL and the remote layer's tunables, given as flags to a real node in a real etcd:
the lease etcd granted, the module params the node starts with and changes at run time, and the
exact refusals of values out of range."""

from __future__ import annotations

import pytest

from ramster.client import SyncClient
from ramster.errors import InvalidArgument
from tests.support.etcd import EtcdProcess
from tests.support.nodes import NodeFactory, run_cli
from tests.support.processes import wait_for


def test_flags_set_the_lease_ttl_and_the_params_a_node_starts_with(
    node_factory: NodeFactory, etcd: EtcdProcess, etcd_cluster: str
) -> None:
    node = node_factory.start(
        "tuned",
        extra_flags=(
            "--etcd", etcd.url, "--cluster", etcd_cluster, "--lease-ttl", "7",
            "--repair-rate", "500", "--read-timeout-ms", "250", "--recover-timeout", "5",
        ),
    )  # fmt: skip
    first = lease_of(etcd, etcd_cluster)
    assert first["granted-ttl"] == 7, first
    with SyncClient(node.address, client_name="ops") as client:
        params = client.params()
        assert (params["repair_rate"], params["read_timeout_ms"]) == ("500", "250")
        assert (params["lease_ttl"], params["recover_timeout"]) == ("7", "5")
        # A new TTL moves the node's entry to a new lease at once; the old one is revoked.
        assert client.set_param("lease_ttl", "20")["lease_ttl"] == "20"
        second = lease_of(etcd, etcd_cluster)
        assert (second["granted-ttl"], second["id"] != first["id"]) == (20, True), second
        gone = etcd.ctl_json("lease", "timetolive", f"{first['id']:x}")
        assert gone["ttl"] == -1, gone  # etcd's answer for a lease that no longer exists
        # At run time, as every module param: per node, refused out of range.
        assert client.set_param("repair_rate", "1000")["repair_rate"] == "1000"
        with pytest.raises(InvalidArgument) as refused:
            client.set_param("read_timeout_ms", "0")
        assert refused.value.message == (
            "param read_timeout_ms value '0' is invalid: expected whole milliseconds in 1..60000"
        )
        assert client.params()["read_timeout_ms"] == "250"
    # Cluster-wide through etcd, which every node follows.
    result = run_cli(
        "param", "set", "read_timeout_ms", "400", "--cluster", etcd_cluster, "--etcd", etcd.url
    )
    assert result.returncode == 0, result.stderr
    result = run_cli(
        "param", "set", "lease_ttl", "9", "--cluster", etcd_cluster, "--etcd", etcd.url
    )
    assert result.returncode == 0, result.stderr
    with SyncClient(node.address, client_name="ops") as client:
        wait_for(
            lambda: client.params()["read_timeout_ms"] == "400",
            what="the node took the cluster's read_timeout_ms",
        )
        wait_for(
            lambda: lease_of(etcd, etcd_cluster)["granted-ttl"] == 9,
            what="the node moved its entry to a lease of the cluster's lease_ttl",
        )


def lease_of(etcd: EtcdProcess, cluster: str) -> dict[str, int]:
    """The lease node 1's entry is under, as ``etcdctl lease timetolive`` tells it."""
    entry = etcd.ctl_json("get", f"/ramster/{cluster}/nodes/1")["kvs"][0]
    lease: dict[str, int] = etcd.ctl_json("lease", "timetolive", f"{entry['lease']:x}")
    return lease
