"""Per-identity quotas on real nodes (issue 12, "Bounded resources"): a client identity past its
quota is refused per page (PUT_STATUS_QUOTA) while another goes on; ``ramster quota`` sets,
unsets and lists quotas on one node (an admin's calls, logged with who made them) or
cluster-wide through etcd; ``ramster stats --clients`` shows what each identity's pages take.
Over mTLS with certificates of one CA made in a temporary folder, and etcd for the cluster."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import grpc
import pytest

from ramster.api.v1 import tmem_pb2
from ramster.client import TLS, PermissionDenied, SyncClient
from ramster.trust.files import init_ca, issue
from ramster.trust.identity import Identity, Role
from tests.support.cluster import Cluster
from tests.support.etcd import EtcdProcess
from tests.support.nodes import NodeFactory, NodeProcess, run_cli
from tests.support.processes import wait_for
from tests.support.wire import RawNode

NOW = datetime.datetime.now(datetime.UTC)
PAGE = bytes(range(256)) * 16
STORED, QUOTA = tmem_pb2.PUT_STATUS_STORED, tmem_pb2.PUT_STATUS_QUOTA


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    """A cluster CA with node n1, clients alice and bob, and admin ops."""
    folder = tmp_path / "pki"
    init_ca(folder, now=NOW)
    issue(folder, Identity(Role.NODE, "n1"), ["127.0.0.1"], now=NOW)
    for identity in (
        Identity(Role.CLIENT, "alice"),
        Identity(Role.CLIENT, "bob"),
        Identity(Role.ADMIN, "ops"),
    ):
        issue(folder, identity, now=NOW)
    return folder


def tls_of(folder: Path, name: str) -> TLS:
    return TLS(folder / "ca.crt", folder / f"{name}.crt", folder / f"{name}.key")


def tls_flags(folder: Path, name: str) -> tuple[str, ...]:
    tls = tls_of(folder, name)
    return ("--tls-ca", str(tls.ca), "--tls-cert", str(tls.cert), "--tls-key", str(tls.key))


@pytest.fixture
def node(node_factory: NodeFactory, pki: Path) -> NodeProcess:
    """Node n1, serving over mTLS only."""
    return node_factory.start("n1", extra_flags=tls_flags(pki, "n1"))


def as_ops(pki: Path, node: NodeProcess, *args: str) -> tuple[int, str, str]:
    """``ramster ARGS`` against `node` as admin ops: exit status, stdout, stderr."""
    done = run_cli(*args, "--node", node.address, *tls_flags(pki, "ops"))
    return done.returncode, done.stdout, done.stderr


def put(raw: RawNode, client: str, pool_id: int, indices: range) -> list[int]:
    """The status of each page of one put of `indices` (object 1) into `pool_id`."""
    pages = [tmem_pb2.Page(oid=tmem_pb2.Oid(word0=1), index=i, data=PAGE) for i in indices]
    answer = raw.tmem("PutPages", client=client, pool_id=pool_id, pages=pages)
    return list(answer.parsed(tmem_pb2.PutPagesResponse).results)


def test_an_identity_past_its_quota_is_refused_per_page_and_another_is_not(
    node: NodeProcess, pki: Path
) -> None:
    assert as_ops(pki, node, "quota", "set", "client:alice", "8KiB") == (
        0,
        "client:alice 8192 bytes (8.0KiB)\n",
        "",
    )
    with (
        RawNode(node.address, tls=tls_of(pki, "alice")) as alice,
        RawNode(node.address, tls=tls_of(pki, "bob")) as bob,
    ):
        new_pool = tmem_pb2.NewPoolRequest(client="swap", persistent=True)
        for uid, raw in enumerate((alice, bob), start=1):
            assert raw.call("/ramster.api.v1.Tmem/NewPool", new_pool).parsed(
                tmem_pb2.NewPoolResponse
            ) == tmem_pb2.NewPoolResponse(pool_id=0, pool_uid=uid, codec="lz4")
        assert put(alice, "swap", 0, range(3)) == [STORED, STORED, QUOTA]
        assert put(alice, "swap", 0, range(1)) == [STORED]  # an overwrite needs no room
        assert put(bob, "swap", 0, range(3)) == [STORED, STORED, STORED]
    with SyncClient(node.address, "swap", tls=tls_of(pki, "alice")) as client:
        pool = client.new_pool(persistent=True)  # pool 1 of the same identity: the same quota
        assert client.put_many(pool, [(1, 0, PAGE)]) == [False]
        assert client.put(pool, 1, 1, PAGE) is False
        assert client.stats()["put_quota"] == 3
        with pytest.raises(PermissionDenied) as refused:
            client.clients()
        assert refused.value.message == (
            "Admin/GetClients is for admin identities: the caller is <Identity client 'alice'> "
            "(role client)"
        )
    assert as_ops(pki, node, "stats", "--clients") == (
        0,
        f"node {node.address}: 2 client identities hold pools\n"
        "identity       pages    bytes   quota   put_quota\n"
        "─────────────────────────────────────────────────\n"
        "client:alice       2    8,192   8,192           3\n"
        "client:bob         3   12,288    none           0\n",
        "",
    )
    code, out, _ = as_ops(pki, node, "stats", "--clients", "--json")
    assert (code, json.loads(out)) == (
        0,
        {
            "clients": [
                {"identity": "client:alice", "pages": 2, "nbytes": 8192, "quota": 8192,
                 "refused": 3},
                {"identity": "client:bob", "pages": 3, "nbytes": 12288, "quota": 0, "refused": 0},
            ]
        },
    )  # fmt: skip
    log = node.log()
    assert [line.split(" ramster.node: ")[1] for line in log.splitlines() if " by <" in line] == [
        "quota of client:alice set to 8192 bytes by <Identity admin 'ops'> over the main listener"
    ]


def test_a_quota_of_no_client_identity_or_past_the_largest_is_refused_on_the_wire(
    node: NodeProcess, pki: Path
) -> None:
    with RawNode(node.address, tls=tls_of(pki, "ops")) as ops:
        refusals = {
            "no identity": ops.admin("SetQuota", identity="", quota_bytes=1).refusal,
            "a node": ops.admin("UnsetQuota", identity="node:n1").refusal,
            "too large": ops.admin(
                "SetQuota", identity="client:alice", quota_bytes=(1 << 50) + 1
            ).refusal,
        }
    expected = (
        "expected role:name with role client, admin or local and name 1-63 letters, digits, "
        "'.', '_' or '-', starting alnum"
    )
    assert refusals == {
        "no identity": (grpc.StatusCode.INVALID_ARGUMENT, f"identity '' is invalid: {expected}"),
        "a node": (grpc.StatusCode.INVALID_ARGUMENT, f"identity 'node:n1' is invalid: {expected}"),
        "too large": (
            grpc.StatusCode.INVALID_ARGUMENT,
            "quota_bytes 1125899906842625 is invalid: expected at most 1125899906842624 "
            "(1024TiB; 0: no quota)",
        ),
    }


def test_quotas_are_set_unset_and_listed_by_an_admin_through_the_cli(
    node: NodeProcess, pki: Path
) -> None:
    assert as_ops(pki, node, "quota", "list") == (
        0,
        "client_quota none (every identity without its own)\n",
        "",
    )
    assert as_ops(pki, node, "param", "set", "client_quota", "1MiB")[:2] == (
        0,
        "client_quota 1048576\n",
    )
    assert as_ops(pki, node, "quota", "set", "local:local", "0")[1] == "local:local none\n"
    assert as_ops(pki, node, "quota", "set", "admin:ops", "64Mi")[0] == 0
    assert as_ops(pki, node, "quota", "list") == (
        0,
        "client_quota 1048576 bytes (1.0MiB) (every identity without its own)\n"
        "admin:ops 67108864 bytes (64.0MiB)\n"
        "local:local none\n",
        "",
    )
    assert as_ops(pki, node, "quota", "unset", "admin:ops") == (
        0,
        "admin:ops unset: client_quota holds it (1048576 bytes (1.0MiB))\n",
        "",
    )
    assert as_ops(pki, node, "quota", "unset", "admin:ops") == (
        0,
        "admin:ops had no quota of its own: nothing to do\n",
        "",
    )
    name_rule = "name 1-63 letters, digits, '.', '_' or '-', starting alnum"
    assert {
        "a node": as_ops(pki, node, "quota", "set", "node:n1", "1MiB"),
        "no size": as_ops(pki, node, "quota", "set", "client:alice"),
        "a bad size": as_ops(pki, node, "quota", "set", "client:alice", "lots"),
    } == {
        "a node": (
            2,
            "",
            f"ramster quota: IDENTITY 'node:n1' is invalid: expected role:name with role "
            f"client, admin or local and {name_rule}\n",
        ),
        "no size": (
            2,
            "",
            "ramster quota: quota set takes IDENTITY SIZE; quota unset takes IDENTITY; quota "
            "list takes neither\n",
        ),
        "a bad size": (
            2,
            "",
            "ramster quota: SIZE 'lots' is invalid: expected a size of at most 1024TiB such as "
            "64MiB or 768Mi (0: no quota)\n",
        ),
    }
    as_alice = run_cli("quota", "list", "--node", node.address, *tls_flags(pki, "alice"))
    assert (as_alice.returncode, as_alice.stderr) == (
        1,
        "ramster quota: Admin/GetQuotas is for admin identities: the caller is "
        "<Identity client 'alice'> (role client)\n",
    )
    log = node.log()
    assert [line.split(" ramster.node: ")[1] for line in log.splitlines() if " by <" in line] == [
        "param 'client_quota' set to '1MiB' by <Identity admin 'ops'> over the main listener",
        "quota of local:local set to 0 bytes by <Identity admin 'ops'> over the main listener",
        "quota of admin:ops set to 67108864 bytes by <Identity admin 'ops'> over the main listener",
        "quota of admin:ops unset by <Identity admin 'ops'> over the main listener",
        "quota of admin:ops unset by <Identity admin 'ops'> over the main listener",
    ]


def test_a_quota_set_cluster_wide_in_etcd_reaches_a_node_and_its_unset_too(
    node_factory: NodeFactory, etcd: EtcdProcess, etcd_cluster: str
) -> None:
    """Without TLS every caller is the local identity (local:local)."""
    cluster = Cluster(node_factory, etcd.url, etcd_cluster)
    try:
        cluster.start("A", "16MiB")
        client = cluster.clients["A"]
        cli = ("--cluster", etcd_cluster, "--etcd", etcd.url)
        done = run_cli("quota", "set", "local:local", "4096", *cli)
        assert (done.returncode, done.stdout, done.stderr) == (
            0,
            f"local:local 4096 bytes (4.0KiB) (cluster {etcd_cluster}: every node applies it)\n",
            "",
        )
        wait_for(lambda: client.quotas().by_identity == {"local:local": 4096}, what="the quota")
        pool = client.new_pool()
        assert client.put_many(pool, [(1, 0, PAGE), (1, 1, PAGE)]) == [True, False]

        done = run_cli("quota", "unset", "local:local", *cli)
        assert (done.returncode, done.stdout) == (
            0,
            f"local:local unset (cluster {etcd_cluster}: every node applies it)\n",
        )
        wait_for(lambda: client.quotas().by_identity == {}, what="the quota unset")
        assert client.put_many(pool, [(1, 1, PAGE)]) == [True]
        done = run_cli("param", "set", "client_quota", "8KiB", *cli)
        assert (done.returncode, done.stdout) == (
            0,
            f"client_quota 8192 (cluster {etcd_cluster}: every node applies it)\n",
        )
        wait_for(lambda: client.quotas().default == 8192, what="client_quota")
        assert client.put_many(pool, [(1, 1, PAGE), (1, 2, PAGE)]) == [True, False]
        usage = client.clients()
        assert [(u.identity, u.pages, u.nbytes, u.quota, u.refused) for u in usage] == [
            ("local:local", 2, 8192, 8192, 2)
        ]
        # Another param's change leaves client_quota alone: etcd holds it as the node shows it.
        assert run_cli("param", "set", "origin_grace", "600", *cli).returncode == 0
        wait_for(lambda: client.params()["origin_grace"] == "600", what="origin_grace")
        log = cluster.nodes["A"].log()
        assert "cluster quota of local:local = 4096 bytes applied" in log
        assert "cluster quota of local:local unset" in log
        assert log.count("cluster param client_quota = '8192' applied") == 1
    finally:
        cluster.close()
