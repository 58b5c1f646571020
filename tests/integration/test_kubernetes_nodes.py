"""Nodes named and addressed as Kubernetes names and addresses them: a node name of 253
characters (a DNS subdomain, longer than a certificate's CN may be) and a pod IP of IPv6, passed
bare as the downward API gives it and bracketed by the node itself. Real nodes with mTLS, a real
etcd; the node with the long name listens on IPv6 loopback (::1)."""

from __future__ import annotations

import datetime
import re
import secrets
from pathlib import Path

import pytest

from ramster.trust.files import init_ca, issue, load_ca
from ramster.trust.identity import Identity, Role, common_name
from ramster.trust.pki import certificate_pem, key_pem, make_certificate
from ramster.trust.seal import KEY_BYTES
from ramster.wire.tls import TLS
from tests.support.cluster import Cluster, pages_of, read_back, store_all
from tests.support.etcd import EtcdProcess
from tests.support.nodes import NodeFactory, run_cli, table_rows

LONG = ".".join(["worker-" + "a" * 56] * 4)[:253]
"""A Kubernetes node name as long as one may be: four labels of 63 characters, less one."""


def has_ipv6_loopback() -> bool:
    """Whether ::1 is configured (/proc/net/if_inet6 lists addresses as 32 hex digits)."""
    table = Path("/proc/net/if_inet6")
    lines = table.read_text().splitlines() if table.exists() else []
    return any(line.split()[0] == "0" * 31 + "1" for line in lines)


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    """A CA, node B and client app by `ramster certs`; the long-named node's files under a
    short name (``NAME.pagekey`` of a 253-character name is longer than a file name may be)."""
    folder, now = tmp_path / "pki", datetime.datetime.now(datetime.UTC)
    init_ca(folder, now=now)
    for role, name in ((Role.NODE, "B"), (Role.CLIENT, "app")):
        issue(folder, Identity(role, name), now=now)
    pair = make_certificate(load_ca(folder), Identity(Role.NODE, LONG), now=now)
    (folder / "long.crt").write_bytes(certificate_pem(pair.certificate))
    (folder / "long.key").write_bytes(key_pem(pair.key))
    (folder / "long.pagekey").write_bytes(secrets.token_bytes(KEY_BYTES))
    for private in ("long.key", "long.pagekey"):
        (folder / private).chmod(0o600)
    return folder


def tls(folder: Path, stem: str) -> TLS:
    return TLS(folder / "ca.crt", folder / f"{stem}.crt", folder / f"{stem}.key")


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback (::1) on this machine")
def test_a_node_with_a_253_character_name_on_ipv6_joins_and_keeps_copies_both_ways(
    node_factory: NodeFactory, etcd: EtcdProcess, etcd_cluster: str, pki: Path
) -> None:
    assert len(LONG) == 253
    cluster = Cluster(node_factory, etcd.url, etcd_cluster, copies=2)
    try:
        app = tls(pki, "app")
        # As node.yaml starts it: RAMSTER_ADVERTISE is $(POD_IP), an IPv6 address unbracketed.
        long_node = cluster.start(
            LONG,
            "16MiB",
            listen="[::1]:0",
            flags=("--advertise", "::1"),
            tls=(tls(pki, "long"), app),
        )
        cluster.start("B", "16MiB", tls=(tls(pki, "B"), app))
        port = long_node.address.rsplit(":", 1)[1]
        assert long_node.address == f"[::1]:{port}"
        members = run_cli("members", "--etcd", cluster.etcd_url, "--cluster", cluster.name)
        assert members.returncode == 0, members.stderr
        rows = {row[1]: row[2] for row in table_rows(members.stdout)}
        assert rows == {LONG: f"[::1]:{port}", "B": re.sub(".*://", "", cluster.nodes["B"].address)}
        # Two copies of every persistent page: each node's second copies go to the other, over
        # mTLS, and B takes the long node's certificate (CN abbreviated, name in its URI) as the
        # node etcd numbers under that name.
        numbers = pages_of(range(8))
        for name in (LONG, "B"):
            client = cluster.clients[name]
            pool = client.new_pool(persistent=True)
            store_all(client, pool, numbers)
            assert read_back(client, pool, numbers, free=None) == []
        assert cluster.foreign_pers(LONG, "B") == {LONG: len(numbers), "B": len(numbers)}
        assert common_name(LONG) != LONG
    finally:
        cluster.close()
