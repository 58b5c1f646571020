"""``ramster swap``: the kernel swaps through nbdfuse and a loop device to an NBD export, and
every step comes down again, also after a failure midway. Root only (swapon, losetup, FUSE); the
machine's swap is shared, so the devices are small, at the lowest priority, and taken down in
``finally``. The plumbing's own failures are tried on nbdkit's memory plugin: the chain is the
same for the node's exports.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from nodemanager.cli import list_members
from ramster.client import SyncClient
from ramster.errors import Unavailable
from ramster.swap import system
from ramster.swap.record import SwapRecord, records
from tests.support.cluster import Cluster
from tests.support.etcd import EtcdProcess
from tests.support.nodes import NodeFactory, NodeProcess, run_cli
from tests.support.processes import ManagedProcess, wait_for
from tests.support.swap import leftovers, run_hog
from tests.support.tools import require


@pytest.fixture(autouse=True)
def _root() -> None:
    require(None if os.geteuid() == 0 else f"kernel swap needs root (euid is {os.geteuid()})")


MiB = 2**20


def swap_node(
    node_factory: NodeFactory, tmp_path: Path, name: str = "n1", *flags: str
) -> tuple[NodeProcess, Path, Path]:
    """A node serving NBD on a unix socket and Admin on its admin socket; both sockets."""
    nbd, admin = tmp_path / f"{name}.nbd.sock", tmp_path / f"{name}.admin.sock"
    node = node_factory.start(
        name, extra_flags=("--nbd", f"unix://{nbd}", "--admin-listen", f"unix://{admin}", *flags)
    )
    return node, nbd, admin


def test_swap_on_swaps_a_hog_to_a_node_and_off_leaves_nothing(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    spill = ("--nbd-spill", str(tmp_path / "spill"), "--nbd-spill-size", "64MiB")
    node, nbd, admin = swap_node(node_factory, tmp_path, "n1", "--memory", "256MiB", *spill)
    assert "node n1 is locked in memory" in node.log()
    locked = Path(f"/proc/{node.ready['pid']}/status").read_text().split("VmLck:")[1].split()[0]
    assert int(locked) > 0
    state = tmp_path / "state"
    on = run_cli("swap", "on", "--size", "64MiB", "--name", "t0", "--node", f"unix://{admin}",
                 "--nbd-socket", nbd, "--state-dir", state)  # fmt: skip
    (record,) = records(state)
    try:
        assert on.returncode == 0, on.stderr
        uri = f"nbd+unix:///t0?socket={nbd}"
        assert on.stdout == f"t0: {record.loop} swaps to {uri} on unix://{admin}\n"
        assert record.done == ("export", "fuse", "loop", "mkswap", "swapon")
        size, _used, priority = system.swap_usage(record.loop) or (0, 0, 0)
        assert size == 64 * MiB - 4096  # the first page is the swap header
        assert priority < 0  # the kernel's default: below every device with a priority
        hog = run_hog(pages=12288, limit=24 * MiB)
        assert (hog.pages, hog.wrong) == (12288, 0)
        assert hog.swapped_out > 0
        with SyncClient(f"unix://{admin}", client_name="test") as client:
            (export,) = client.list_exports()
            assert (export.name, export.size) == ("t0", 64 * MiB)
            assert export.pages > 0  # swapped pages the kernel has not freed yet
        status = run_cli("swap", "status", "--state-dir", state)
        assert status.returncode == 0, status.stderr
        header, _rule, line = status.stdout.splitlines()
        assert header.split()[-1] == "done"
        row = line.split()
        assert row[:2] == ["t0", record.loop]
        assert row[-1] == "swapon"  # the last step: all are done
        # the export's pages in the store and in the spill, as the node answered
        assert row[-3].replace(",", "").isdigit() and row[-2].replace(",", "").isdigit(), row
    finally:
        off = run_cli("swap", "off", "--state-dir", state)
    assert (off.returncode, off.stdout) == (0, "t0: off\n"), off.stderr
    assert leftovers(record.folder, record.loop) == []
    assert records(state) == []
    with SyncClient(f"unix://{admin}", client_name="test") as client:
        assert client.list_exports() == []
    node.process.check_alive()


def test_killing_a_holder_of_second_copies_midway_loses_no_swapped_page(
    node_factory: NodeFactory, etcd: EtcdProcess, etcd_cluster: str, tmp_path: Path
) -> None:
    """Node A serves the swap with a small budget, so it ships pages to B and C; both hold
    second copies. B is killed between the hog's writes and its reads: every page comes back."""
    cluster = Cluster(node_factory, etcd.url, etcd_cluster, copies=2)
    nbd, admin = tmp_path / "nbd.sock", tmp_path / "admin.sock"
    state = tmp_path / "state"
    try:
        spill = ("--nbd-spill", str(tmp_path / "spill"), "--nbd-spill-size", "96MiB")
        flags = ("--nbd", f"unix://{nbd}", "--admin-listen", f"unix://{admin}", *spill)
        cluster.start("A", "8MiB", flags=flags)
        cluster.start("B", "128MiB")
        cluster.start("C", "128MiB")
        members = lambda: sorted(m.name for m in asyncio.run(list_members(etcd.url, etcd_cluster)))  # noqa: E731
        wait_for(lambda: members() == ["A", "B", "C"], what="A, B and C in the view")
        on = run_cli("swap", "on", "--size", "96MiB", "--name", "t3", "--node", f"unix://{admin}",
                     "--nbd-socket", nbd, "--state-dir", state)  # fmt: skip
        assert on.returncode == 0, on.stderr
        held: dict[str, int] = {}

        def kill_b() -> None:
            held.update(cluster.foreign_pers("B", "C"))
            cluster.nodes["B"].kill()
            wait_for(lambda: members() == ["A", "C"], what="B out of the view")

        hog = run_hog(pages=24576, limit=48 * MiB, between=kill_b)
        assert (hog.pages, hog.wrong) == (24576, 0)
        assert held["B"] > 0 and held["C"] > 0
    finally:
        off = run_cli("swap", "off", "--state-dir", state)
        cluster.close()
    assert off.returncode == 0, off.stderr
    assert records(state) == []


def test_a_failed_swap_on_undoes_what_it_did(tmp_path: Path) -> None:
    state = tmp_path / "state"
    missing = f"nbd+unix:///?socket={tmp_path / 'nobody.sock'}"
    record = SwapRecord("t1", state / "t1", uri=missing, size=64 * MiB)
    with pytest.raises(Unavailable, match=r"^nbdfuse exited with 1: "):
        system.swap_on(record, None)
    assert leftovers(record.folder, "") == []


def test_a_device_too_small_for_mkswap_is_taken_down_after_its_loop_device(
    tmp_path: Path,
) -> None:
    """mkswap refuses a device under 40 KiB: fuse and loop were done, and are undone."""
    socket = tmp_path / "tiny.sock"
    tiny = ManagedProcess(
        "nbdkit",
        ["nbdkit", "--foreground", "--unix", str(socket), "memory", "16K"],
        tmp_path / "nbdkit.log",
    )
    try:
        wait_for(socket.exists, 10, "nbdkit's socket")
        record = SwapRecord("t2", tmp_path / "state" / "t2", uri=f"nbd+unix:///?socket={socket}")
        with pytest.raises(Unavailable, match=r"^mkswap --label ramster-t2 /dev/loop\d+ failed"):
            system.swap_on(record, None)
        assert leftovers(record.folder, "") == []
    finally:
        tiny.stop()
