"""The kernel side of swap tests: a memory hog in a memory cgroup smaller than itself, and a
check that a swap device left nothing behind. Root only; every cgroup made is removed.

The hog writes `pages` 4 KiB pages of known content (a third random, a third compressible, a
third zero or same-filled), keeps a SHA-256 of each, then reads every page back and compares:
with a cgroup limit of half its size, about half its pages go to swap and come back from it.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")

HOG = r"""
import hashlib, os, sys, time
pages = int(sys.argv[1])
seed = sys.argv[2].encode()
page = 4096
memory = bytearray(pages * page)
digests = []
started = time.perf_counter()
for i in range(pages):
    kind = i % 3
    if kind == 0:
        data = hashlib.shake_256(seed + i.to_bytes(8, "little")).digest(page)
    elif kind == 1:
        data = ((b"page %d of the hog; " % i) * page)[:page]
    else:
        data = bytes([i % 7]) * page
    memory[i * page : (i + 1) * page] = data
    digests.append(hashlib.sha256(data).digest())
written = time.perf_counter()
print("written", flush=True)
sys.stdin.readline()  # the test's go-ahead: it may break something first
resumed = time.perf_counter()
wrong = sum(
    hashlib.sha256(memory[i * page : (i + 1) * page]).digest() != digests[i] for i in range(pages)
)
read = time.perf_counter()
print(f"pages={pages} wrong={wrong} write_s={written - started:.3f} read_s={read - resumed:.3f}")
"""


@dataclass(frozen=True)
class HogResult:
    pages: int
    wrong: int
    write_seconds: float
    read_seconds: float
    swapped_out: int
    """Pages the kernel swapped out machine-wide while the hog wrote (/proc/vmstat pswpout)."""


def _vmstat(name: str) -> int:
    for line in Path("/proc/vmstat").read_text().splitlines():
        key, value = line.split()
        if key == name:
            return int(value)
    raise KeyError(name)


@contextlib.contextmanager
def memory_cgroup(limit: int) -> Iterator[Path]:
    """A memory cgroup of `limit` bytes (v2 where present, else v1), removed afterwards."""
    name = f"ramster-test-{uuid.uuid4().hex[:8]}"
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        path = CGROUP_ROOT / name
        path.mkdir()
        (path / "memory.max").write_text(str(limit))
    else:
        path = CGROUP_ROOT / "memory" / name
        path.mkdir()
        (path / "memory.limit_in_bytes").write_text(str(limit))
    try:
        yield path
    finally:
        for _ in range(50):
            try:
                path.rmdir()
                break
            except OSError:
                subprocess.run(["sleep", "0.1"], check=False)


def run_hog(
    pages: int, limit: int, between: Callable[[], object] = lambda: None, timeout: float = 600
) -> HogResult:
    """Run the hog in a memory cgroup of `limit` bytes, calling `between` once it has written
    every page and before it reads them back; what it saw."""
    with memory_cgroup(limit) as cgroup:
        before = _vmstat("pswpout")
        hog = subprocess.Popen(
            ["sh", "-c", f'echo $$ > {cgroup}/cgroup.procs && exec "$@"', "hog",
             sys.executable, "-c", HOG, str(pages), uuid.uuid4().hex],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert hog.stdout is not None and hog.stdin is not None
            assert hog.stdout.readline() == "written\n", hog.communicate(timeout=timeout)[1]
            swapped = _vmstat("pswpout") - before
            between()
            out, err = hog.communicate("go\n", timeout=timeout)
        finally:
            if hog.poll() is None:
                hog.kill()
                hog.wait()
    assert hog.returncode == 0, err[-2000:]
    fields = dict(word.split("=") for word in out.split())
    return HogResult(
        int(fields["pages"]),
        int(fields["wrong"]),
        float(fields["write_s"]),
        float(fields["read_s"]),
        swapped,
    )


def leftovers(folder: Path, loop: str) -> list[str]:
    """What of a swap device taken down is still there: its folder, its loop device in swap or
    attached to its file, its nbdfuse's cgroup, its FUSE mount."""
    found = []
    if folder.exists():
        found.append(f"folder {folder}")
    if loop and any(
        line.split()[0] == loop for line in Path("/proc/swaps").read_text().splitlines()[1:]
    ):
        found.append(f"{loop} in /proc/swaps")
    backing = Path(f"/sys/block/{Path(loop).name}/loop/backing_file") if loop else None
    if backing is not None and backing.exists() and str(folder) in backing.read_text():
        found.append(f"{loop} attached to {backing.read_text().strip()}")
    if any(CGROUP_ROOT.glob(f"**/ramster-swap-{folder.name}")):
        found.append(f"cgroup ramster-swap-{folder.name}")
    mounts = Path("/proc/mounts").read_text()
    if str(folder) in mounts:
        found.append(f"a mount under {folder}")
    return found
