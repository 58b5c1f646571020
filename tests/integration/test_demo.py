"""`make run`'s job, end to end: the `ramster demo` command as a user runs it."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ramster.client import FailedPrecondition, SyncClient, Unavailable
from ramster.launcher import LocalCluster
from tests.support.cluster import MiB

RAMSTER = Path(sys.executable).with_name("ramster")


def test_demo_overcommits_node_1_and_verifies_every_page() -> None:
    result = subprocess.run(
        [str(RAMSTER), "demo", "--pages", "2048", "--memory", "1MiB"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    taken = re.search(
        r"frontswap: ([\d,]+) of 1,536 pages taken .*?, ([\d,]+) loaded back, 0 lost", out
    )
    assert taken is not None and taken.group(1) == taken.group(2), out
    shipped = re.search(r"^1 node1 +[\d,]+ +\S+ +\S+ +([\d,]+) +0 +1\.0MiB$", out, re.MULTILINE)
    assert shipped is not None and int(shipped.group(1).replace(",", "")) > 0, out
    held = re.findall(r"^[23] node[23] +[\d,]+ +\S+ +\S+ +0 +([\d,]+) +8\.0MiB$", out, re.MULTILINE)
    assert len(held) == 2 and sum(int(h.replace(",", "")) for h in held) > 0, out
    assert out.rstrip().endswith("OK: 0 wrong pages, 0 lost swap pages")


def test_demo_refuses_a_malformed_size_naming_it() -> None:
    result = subprocess.run(
        [str(RAMSTER), "demo", "--memory", "12x"], capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stderr) == (
        2,
        "ramster demo: argument --memory: size '12x' is invalid: expected a whole number of bytes "
        "such as 4096, 64MiB or 768Mi\n",
    )


def test_the_demos_nodes_take_only_certificates_of_its_own_ca(tmp_path: Path) -> None:
    with LocalCluster(1, [64 * MiB], cluster="demo", directory=tmp_path) as cluster:
        (node,) = cluster.nodes
        with SyncClient(node.address, client_name="admin", tls=cluster.admin_tls) as client:
            assert client.stats()["node_number"] == node.number
        with (
            SyncClient(node.address, client_name="plaintext", timeout=5) as client,
            pytest.raises(Unavailable),
        ):
            client.stats()
        modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in cluster.tls_dir.iterdir()}
    assert stat.S_IMODE(cluster.tls_dir.stat().st_mode) == 0o700
    assert modes == {
        "ca.crt": 0o644, "ca.key": 0o600,
        "client.crt": 0o644, "client.key": 0o600,
        "admin.crt": 0o644, "admin.key": 0o600,
        "node1.crt": 0o644, "node1.key": 0o600, "node1.pagekey": 0o600,
        "etcd.crt": 0o644, "etcd.key": 0o600, "etcd.pagekey": 0o600,  # etcd serves as a node
        "root.crt": 0o644, "root.key": 0o600,  # etcd's root user, who set its auth up
    }  # fmt: skip


def test_a_plaintext_local_cluster_serves_callers_without_certificates(tmp_path: Path) -> None:
    """The bench's same-run baseline: no CA, etcd over http, nodes on loopback without TLS,
    shipped pages unsealed."""
    with LocalCluster(
        2, [64 * MiB], cluster="plain", directory=tmp_path, plaintext=True
    ) as cluster:
        assert cluster.etcd_url.startswith("http://")
        assert not cluster.tls_dir.exists()
        with pytest.raises(FailedPrecondition, match="issues no certificates: it is plaintext"):
            cluster.tls_of("admin")
        first, second = cluster.nodes
        with SyncClient(first.address, client_name="plain") as client:
            pool = client.new_pool(persistent=True)
            assert client.put(pool, 1, 0, b"p" * 4096)
            assert client.get(pool, 1, 0, free=False) == b"p" * 4096
            assert client.stats()["node_number"] == first.number
        with SyncClient(second.address, client_name="plain") as client:
            assert client.stats()["node_number"] == second.number
