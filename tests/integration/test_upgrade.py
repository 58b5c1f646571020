"""An old and a new node in one cluster (issue 15, docs/operations.md "Upgrades"): a node of the
release at `OLD` (before the lean Peer calls, the packaging split and the error details), built
from this repository's history into a virtualenv of its own, beside a node of this tree, in one
etcd cluster with two copies of every persistent page. Each holds the other's second copies —
the new one speaks the per-page Peer calls to the old, which does not announce the lean ones —
and every page comes back exact from both.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest

from ramster.client import SyncClient
from tests.support.etcd import EtcdProcess
from tests.support.nodes import READY_TIMEOUT, STOP_TIMEOUT, start_node
from tests.support.processes import ManagedProcess, wait_for

REPO = Path(__file__).resolve().parents[2]
OLD = "ac968d5"
"""The release before issue 14's Peer calls and issue 15's packaging: main on 2026-12-07."""
PAGES = 64


@pytest.fixture(scope="module")
def old_ramster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `ramster` command of the release at `OLD`, installed into a virtualenv of its own."""
    archived = _archive()
    if archived.returncode != 0:  # a shallow clone: fetch the release from where it came from
        fetch = ["git", "-C", str(REPO), "fetch", "--quiet", "--depth=1", "origin", OLD]
        subprocess.run(fetch, capture_output=True, timeout=120, check=False)
        archived = _archive()
    if archived.returncode != 0:
        # Not a missing tool but a missing commit: a shallow clone whose origin cannot give it.
        pytest.skip(f"the release {OLD} is not in this clone's history, nor in its origin")
    folder = tmp_path_factory.mktemp("old-release")
    with tarfile.open(fileobj=BytesIO(archived.stdout)) as tar:
        tar.extractall(folder / "src", filter="data")
    subprocess.run([sys.executable, "-m", "venv", str(folder / "venv")], check=True, timeout=120)
    pip = [str(folder / "venv" / "bin" / "pip"), "install", "--quiet", str(folder / "src")]
    done = subprocess.run(pip, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    return folder / "venv" / "bin" / "ramster"


def _archive() -> subprocess.CompletedProcess[bytes]:
    """The tree of the release at `OLD` as a tar archive, from this clone's history."""
    return subprocess.run(
        ["git", "-C", str(REPO), "archive", OLD], capture_output=True, timeout=60, check=False
    )


def start_old_node(
    ramster: Path, workdir: Path, name: str, etcd: str, cluster: str
) -> tuple[ManagedProcess, str]:
    """A node of the old release in `cluster`; it and its address once it serves."""
    ready = workdir / f"{name}.ready.json"
    argv = [str(ramster), "node", "--listen", "127.0.0.1:0", "--name", name, "--memory",
            "64MiB", "--drain-timeout", "0", "--etcd", etcd, "--cluster", cluster,
            "--ready-file", str(ready)]  # fmt: skip
    process = ManagedProcess(f"old node {name}", argv, workdir / f"{name}.log")
    wait_for(lambda: process.check_alive() or ready.exists(), READY_TIMEOUT, f"old node {name}")
    return process, str(json.loads(ready.read_text())["address"])


def page(n: int) -> bytes:
    return (f"page {n} of the upgrade test ".encode() * 200)[:4096]


@pytest.fixture
def mixed(
    old_ramster: Path, etcd: EtcdProcess, etcd_cluster: str, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    """(old node's address, new node's address), both in one etcd cluster."""
    new, info = start_node(tmp_path, "new", "--etcd", etcd.url, "--cluster", etcd_cluster)
    try:
        old, old_address = start_old_node(old_ramster, tmp_path, "old", etcd.url, etcd_cluster)
        try:
            yield old_address, str(info["address"])
        finally:
            old.stop(STOP_TIMEOUT)
    finally:
        new.stop(STOP_TIMEOUT)


def test_an_old_and_a_new_node_hold_each_others_copies_and_give_every_page_back(
    mixed: tuple[str, str],
) -> None:
    clients = [SyncClient(address, client_name="upgrade") for address in mixed]
    try:
        pools = []
        deadline = time.monotonic() + 30
        for client in clients:  # each node stores once it sees the other (two copies)
            pool = client.new_pool(persistent=True)
            items = [(1, n, page(n)) for n in range(PAGES)]
            while not all(client.put_many(pool, items)):
                assert time.monotonic() < deadline, "no node took the second copies"
                time.sleep(0.2)
            pools.append(pool)
        for client in clients:
            stats = wait_for(
                lambda c=client: (s := c.stats())["foreign_pers_pages"] == PAGES and s,
                15,
                "the other node's copies held here",
            )
            assert (stats["foreign_pers_pages"], stats["pers_pages_at_risk"]) == (PAGES, 0)
        for client, pool in zip(clients, pools, strict=True):
            keys = [(1, n) for n in range(PAGES)]
            assert client.get_many(pool, keys, free=False) == [page(n) for n in range(PAGES)]
    finally:
        for client in clients:
            client.close()
