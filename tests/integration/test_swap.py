"""``ramster swap``: the kernel swaps through nbdfuse and a loop device to an NBD export, and
every step comes down again, also after a failure midway. Root only (swapon, losetup, FUSE); the
machine's swap is shared, so the devices are small, at the lowest priority, and taken down in
``finally``. The export here is nbdkit's memory plugin: the chain is the same for the node's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ramster.errors import Unavailable
from ramster.swap import system
from ramster.swap.record import SwapRecord, records
from tests.support.processes import ManagedProcess, wait_for
from tests.support.swap import leftovers, run_hog

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="kernel swap needs root")

RAMSTER = Path(sys.executable).with_name("ramster")
MiB = 2**20


@pytest.fixture
def nbdkit(tmp_path: Path) -> Iterator[str]:
    """An NBD export of 64 MiB in nbdkit's memory; its URI."""
    socket = tmp_path / "nbdkit.sock"
    process = ManagedProcess(
        "nbdkit",
        ["nbdkit", "--foreground", "--unix", str(socket), "memory", f"{64 * MiB}"],
        tmp_path / "nbdkit.log",
    )
    try:
        wait_for(socket.exists, 10, "nbdkit's socket")
        yield f"nbd+unix:///?socket={socket}"
    finally:
        process.stop()


def _ramster(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RAMSTER), *args], capture_output=True, text=True, timeout=300, check=False
    )


def test_swap_on_swaps_a_hog_through_the_chain_and_off_leaves_nothing(
    tmp_path: Path, nbdkit: str
) -> None:
    state = tmp_path / "state"
    on = _ramster("swap", "on", "--size", "64MiB", "--name", "t0", "--uri", nbdkit,
                  "--state-dir", str(state))  # fmt: skip
    (record,) = records(state)
    try:
        assert on.returncode == 0, on.stderr
        assert on.stdout == f"t0: {record.loop} swaps to {nbdkit}\n"
        assert record.done == ("fuse", "loop", "mkswap", "swapon")
        size, _used, priority = system.swap_usage(record.loop) or (0, 0, 0)
        assert size == 64 * MiB - 4096  # the first page is the swap header
        assert priority < 0  # the kernel's default: below every device with a priority
        hog = run_hog(pages=12288, limit=24 * MiB)
        assert (hog.pages, hog.wrong) == (12288, 0)
        assert hog.swapped_out > 0
        status = _ramster("swap", "status", "--state-dir", str(state))
        assert status.returncode == 0, status.stderr
        assert status.stdout.splitlines()[1].split()[:2] == ["t0", record.loop]
    finally:
        off = _ramster("swap", "off", "--state-dir", str(state))
    assert (off.returncode, off.stdout) == (0, "t0: off\n"), off.stderr
    assert leftovers(record.folder, record.loop) == []
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
