"""Kernel swap (issue 13): one process twice its memory cgroup's limit swaps its pages out and
reads them back, against zram with lz4 (where the kernel has it), nbdkit's memory plugin through
the same nbdfuse + loop path as RAMster's, and RAMster with one copy, with two copies, and with
its pages remotified to a peer. Target: RAMster with two copies >= 0.6x nbdkit's memory plugin.

Swap pages per second are the kernel's (``pswpout`` + ``pswpin`` of /proc/vmstat) over the
hog's time writing and reading; the compression ratio is the bytes the store took over the
bytes of the pages it holds; spilled pages are those RAMster's store refused (the hog's random
third). Root only: without it the section says so and measures nothing. The machine's swap is
shared: every device is taken down in ``finally``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ramster.cli.swap import NodeExports
from ramster.client import SyncClient
from ramster.launcher import LocalCluster
from ramster.swap import system
from ramster.swap.record import SwapRecord
from tests.bench.table import print_table, verdict
from tests.support.swap import HogResult, run_hog

PAGES = 32768
"""The hog: 128 MiB of pages (a third random, a third text, a third same-filled)..."""
LIMIT = 64 << 20
"""...in a memory cgroup of 64 MiB: about half of them go to swap."""
DEVICE = 192 << 20
SPILL = 256 << 20


@dataclass(frozen=True)
class SwapFigures:
    name: str
    hog: HogResult
    swapped: int
    """Pages swapped out and in while the hog ran."""
    seconds: float
    ratio: float | None
    spilled: int | None

    @property
    def rate(self) -> float:
        return self.swapped / self.seconds


def _vmstat() -> int:
    fields = dict(line.split() for line in Path("/proc/vmstat").read_text().splitlines())
    return int(fields["pswpout"]) + int(fields["pswpin"])


def _swap_hog(between: Callable[[], object] = lambda: None) -> tuple[HogResult, int, float]:
    """The hog run once (`between` its writes and reads): what it saw, the pages the kernel
    swapped out and in meanwhile, and the seconds it took."""
    before, start = _vmstat(), time.perf_counter()
    hog = run_hog(PAGES, LIMIT, between=between)
    return hog, _vmstat() - before, time.perf_counter() - start


@contextlib.contextmanager
def _device(record: SwapRecord, exports: system.Exports | None) -> Iterator[SwapRecord]:
    record = system.swap_on(record, exports)
    try:
        yield record
    finally:
        system.swap_off(record, exports)


def _zram(work: Path) -> SwapFigures | None:
    control = Path("/sys/class/zram-control")
    if not control.exists() or "lz4" not in Path("/sys/block/zram0/comp_algorithm").read_text():
        return None
    number = int((control / "hot_add").read_text())
    block, device = Path(f"/sys/block/zram{number}"), f"/dev/zram{number}"
    seen: dict[str, int] = {}

    def sample() -> None:
        orig, compr = map(int, (block / "mm_stat").read_text().split()[:2])
        seen.update(orig=orig, compr=compr)

    try:
        (block / "comp_algorithm").write_text("lz4")
        (block / "disksize").write_text(str(DEVICE))
        subprocess.run(["mkswap", device], check=True, capture_output=True)
        subprocess.run(["swapon", device], check=True, capture_output=True)
        try:
            hog, swapped, seconds = _swap_hog(sample)
        finally:
            subprocess.run(["swapoff", device], check=False, capture_output=True)
    finally:
        (block / "reset").write_text("1")
        (control / "hot_remove").write_text(str(number))
    return SwapFigures("zram lz4", hog, swapped, seconds, seen["compr"] / seen["orig"], None)


def _nbdkit(work: Path) -> SwapFigures:
    socket = work / "nbdkit.sock"
    nbdkit = subprocess.Popen(
        ["nbdkit", "--foreground", "--unix", str(socket), "memory", str(DEVICE)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not socket.exists():
            time.sleep(0.02)
        record = SwapRecord(
            "nbdkit", work / "state" / "nbdkit", uri=f"nbd+unix:///?socket={socket}"
        )
        with _device(record, None):
            hog, swapped, seconds = _swap_hog()
    finally:
        nbdkit.terminate()
        nbdkit.wait(30)
    return SwapFigures("nbdkit memory plugin, nbdfuse + loop", hog, swapped, seconds, 1.0, None)


def _ramster(work: Path, name: str, nodes: int, memory: list[int], copies: int) -> SwapFigures:
    folder = work / name.replace(" ", "-").replace(",", "")
    folder.mkdir()
    socket = folder / "nbd.sock"
    nbd = ["--nbd", f"unix://{socket}", "--nbd-spill", str(folder / "spill")]
    nbd += ["--nbd-spill-size", str(SPILL)]
    with LocalCluster(
        nodes, memory, cluster="swapbench", directory=folder, node_flags={"node1": nbd}
    ) as cluster:
        first = cluster.nodes[0]
        for node in cluster.nodes:
            with SyncClient(node.address, client_name="bench", tls=cluster.admin_tls) as client:
                client.set_param("persistent_copies", str(copies))
        exports = NodeExports(first.address, cluster.admin_tls, None, socket)
        record = SwapRecord(
            "ramster", folder / "state" / "ramster", node=first.address, size=DEVICE
        )
        seen: dict[str, int] = {}

        def sample() -> None:
            with SyncClient(first.address, client_name="bench", tls=cluster.admin_tls) as client:
                seen.update(client.stats())

        with _device(record, exports):
            hog, swapped, seconds = _swap_hog(sample)
    ratio = seen["pers_zbytes"] / max(seen["pers_zpages"] * 4096, 1)  # node 1's own store
    return SwapFigures(name, hog, swapped, seconds, ratio, seen["nbd_spilled_pages"])


def run() -> dict[str, float]:
    title = (
        f"kernel swap: a process of {PAGES * 4096 >> 20} MiB in a {LIMIT >> 20} MiB memory cgroup"
    )
    if os.geteuid() != 0:
        print_table(title, ["setup", "swap pages/s"], [["(not measured: needs root)", "-"]])
        return {}
    with tempfile.TemporaryDirectory(prefix="ramster-bench-swap-") as tmp:
        work = Path(tmp)
        figures = [f for f in (_zram(work), _nbdkit(work)) if f is not None]
        figures.append(_ramster(work, "RAMster, 1 copy", 1, [512 << 20], 1))
        figures.append(_ramster(work, "RAMster, 2 copies", 2, [512 << 20], 2))
        figures.append(_ramster(work, "RAMster, remotified to a peer", 2, [16 << 20, 512 << 20], 1))
    nbdkit = next(f for f in figures if f.name.startswith("nbdkit"))
    rows = []
    for f in figures:
        wrong = f.hog.wrong
        rows.append(
            [
                f.name,
                f"{f.rate:,.0f}",
                f"{f.rate / nbdkit.rate:.2f}x",
                "-" if f.ratio is None else f"{f.ratio:.2f}",
                "-" if f.spilled is None else f"{f.spilled:,}",
                f"{wrong}",
            ]
        )
    print_table(
        title,
        ["setup", "swap pages/s", "x nbdkit", "stored / raw", "spilled pages", "wrong pages"],
        rows,
    )
    two = next(f for f in figures if f.name == "RAMster, 2 copies")
    ratio = two.rate / nbdkit.rate
    print_table(
        "target (issue 13)",
        ["what", "measured", "target", "verdict"],
        [["RAMster 2 copies vs nbdkit memory", f"{ratio:.2f}x", ">= 0.6x", verdict(ratio >= 0.6)]],
    )
    return {"swap_two_copies_x": ratio}
