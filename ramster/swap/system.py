"""The steps of a swap device on this machine: ``nbdfuse``, the loop device, ``mkswap``,
``swapon``, and undoing each.

Every step is recorded once done (`ramster.swap.record`), so `swap_off` undoes exactly what is
there, in reverse, also after `swap_on` failed midway (it calls `swap_off` itself) or was
killed. Undoing checks before it acts: a loop device is detached only while it still backs this
device's file, ``nbdfuse`` is stopped only if its PID is still an ``nbdfuse`` of this device.

Swap over a network block device can deadlock when the process serving it must itself be
swapped in to serve. The ``nbdfuse`` process is kept out of swap: in a memory cgroup of its own
where swap is off (cgroup v2 ``memory.swap.max`` 0, v1 ``memory.swappiness`` 0), and it is
started with ``PR_SET_IO_FLUSHER`` where permitted (it needs CAP_SYS_RESOURCE; a warning says
when it is not). The node locks itself in memory (``ramster node --nbd``).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from ramster.errors import FailedPrecondition, RamsterError, Unavailable
from ramster.pinning import set_io_flusher
from ramster.swap.record import SwapRecord

log = logging.getLogger("ramster.swap")

TOOLS = {
    "nbdfuse": "libnbd-bin",
    "fusermount3": "fuse3",
    "losetup": "mount",
    "mkswap": "util-linux",
    "swapon": "mount",
    "swapoff": "mount",
}
"""The programs a swap device needs, and the Debian package of each."""

FUSE_READY_TIMEOUT = 15.0
"""Seconds ``nbdfuse`` gets to connect to the export and serve its file."""
STOP_TIMEOUT = 10.0
"""Seconds ``nbdfuse`` gets to exit once unmounted, before SIGTERM, then as long before SIGKILL."""
CGROUP_ROOT = Path("/sys/fs/cgroup")


class Exports(Protocol):
    """The node's NBD exports, as a swap device needs them."""

    def create(self, name: str, size: int) -> str:
        """Make export `name` of `size` bytes; its NBD URI."""
        ...

    def delete(self, name: str) -> None: ...


def check_machine(which: Callable[[str], str | None] = shutil.which) -> None:
    """`FailedPrecondition` unless this process is root and every tool of `TOOLS` is here
    (naming the Debian package of each one missing)."""
    if os.geteuid() != 0:
        raise FailedPrecondition("ramster swap needs root: swapon, losetup and FUSE mounts do")
    missing = [
        f"{tool} (Debian package {package})" for tool, package in TOOLS.items() if not which(tool)
    ]
    if missing:
        raise FailedPrecondition(f"ramster swap needs {', '.join(missing)}: install them first")


def swap_on(record: SwapRecord, exports: Exports | None) -> SwapRecord:
    """Set up the device `record` names, step by step, and return its record; on any failure,
    undo what was done and raise. `exports` None: `record.uri` is an export made elsewhere."""
    record.folder.mkdir(mode=0o700, parents=True, exist_ok=False)
    record.save()
    try:
        if exports is not None:
            record = record.did("export", uri=exports.create(record.name, record.size))
        record = _start_fuse(record)
        loop = _run("losetup", "--find", "--show", "--direct-io=on", str(record.disk)).strip()
        record = record.did("loop", loop=loop)
        _run("mkswap", "--label", f"ramster-{record.name}"[:16], loop)
        record = record.did("mkswap")
        priority = [] if record.priority is None else ["--priority", str(record.priority)]
        _run("swapon", "--discard=pages", *priority, loop)
        return record.did("swapon")
    except BaseException:
        record = SwapRecord.load(record.folder)  # the file: steps record themselves as done
        log.error("swap device %s failed while setting up; undoing %s", record.name, record)
        with contextlib.suppress(RamsterError):
            swap_off(record, exports)
        raise


def swap_off(record: SwapRecord, exports: Exports | None) -> None:
    """Undo every step of `record` done, in reverse, each recorded at once; then remove its
    folder. A step that cannot be undone stops here with the error (the record keeps it and
    what came before it, for another try)."""
    if record.has("swapon"):
        if _in_swap(record.loop):
            _run("swapoff", record.loop)
        record = record.undid("swapon")
    if record.has("mkswap"):
        record = record.undid("mkswap")
    if record.has("loop"):
        if _backs(record.loop, record.disk):
            _run("losetup", "--detach", record.loop)
        record = record.undid("loop")
    if record.has("fuse"):
        _stop_fuse(record)
        record = record.undid("fuse")
    if record.has("export"):
        if exports is None:
            raise FailedPrecondition(
                f"swap device {record.name} has an export on {record.node}: give its node"
            )
        exports.delete(record.name)
        record = record.undid("export")
    shutil.rmtree(record.folder)


def io_rates(loop: str, interval: float = 1.0) -> tuple[float, float]:
    """Pages per second read from and written to the loop device over `interval` seconds."""
    before = _sectors(loop)
    time.sleep(interval)
    after = _sectors(loop)
    return ((after[0] - before[0]) / 8 / interval, (after[1] - before[1]) / 8 / interval)


def swap_usage(loop: str) -> tuple[int, int, int] | None:
    """(size, used, priority) of the loop device in the kernel's swap, in bytes; None if it is
    not in swap."""
    for line in Path("/proc/swaps").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[0] == loop:
            return int(fields[2]) * 1024, int(fields[3]) * 1024, int(fields[4])
    return None


# -- the steps ----------------------------------------------------------------------------------


def _start_fuse(record: SwapRecord) -> SwapRecord:
    """``nbdfuse`` serving the export as `record.disk`, out of swap; recorded once it serves."""
    record.mount.mkdir(mode=0o700)
    pidfile = record.folder / "nbdfuse.pid"
    set_io_flusher("nbdfuse")  # set here, inherited by nbdfuse across fork and exec
    with (record.folder / "nbdfuse.log").open("ab") as output:
        process = subprocess.Popen(
            ["nbdfuse", "-P", str(pidfile), str(record.disk), record.uri],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
    record = record.did("fuse", fuse_pid=process.pid)
    _keep_out_of_swap(record.name, process.pid)
    deadline = time.monotonic() + FUSE_READY_TIMEOUT
    while not pidfile.exists():
        if process.poll() is not None:
            tail = (record.folder / "nbdfuse.log").read_text(errors="replace")[-500:]
            raise Unavailable(f"nbdfuse exited with {process.returncode}: {tail.strip()}")
        if time.monotonic() > deadline:
            raise Unavailable(f"nbdfuse did not serve {record.uri} within {FUSE_READY_TIMEOUT} s")
        time.sleep(0.02)
    return record


def _stop_fuse(record: SwapRecord) -> None:
    if _mounted(record.mount):
        _run("fusermount3", "-u", str(record.mount))
    pid = record.fuse_pid
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if not _is_our_fuse(pid, record):
            break
        if sig is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _is_our_fuse(pid, record) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.02)
    _reap(pid)
    _cgroup_of(record.name).remove()


def _is_our_fuse(pid: int, record: SwapRecord) -> bool:
    """Whether `pid` is still this device's ``nbdfuse`` (not a process reusing its PID)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and str(record.disk).encode() in argv and argv[0].endswith(b"nbdfuse")


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _mounted(path: Path) -> bool:
    target = str(path)
    return any(line.split()[1] == target for line in Path("/proc/mounts").read_text().splitlines())


def _in_swap(loop: str) -> bool:
    return swap_usage(loop) is not None


def _backs(loop: str, disk: Path) -> bool:
    """Whether `loop` is attached, to the file `disk`."""
    try:
        backing = Path(f"/sys/block/{Path(loop).name}/loop/backing_file").read_text().strip()
    except OSError:
        return False
    return backing == str(disk)


def _sectors(loop: str) -> tuple[int, int]:
    fields = Path(f"/sys/block/{Path(loop).name}/stat").read_text().split()
    return int(fields[2]), int(fields[6])


def _run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise Unavailable(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


class _Cgroup:
    """A memory cgroup of its own where swap is off, for one device's ``nbdfuse``."""

    def __init__(self, path: Path, no_swap: dict[str, str]) -> None:
        self.path = path
        self.no_swap = no_swap

    def add(self, pid: int) -> None:
        self.path.mkdir(exist_ok=True)
        for name, value in self.no_swap.items():
            (self.path / name).write_text(value)
        (self.path / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        """Remove the cgroup once its process is gone (for a moment after it exits, the kernel
        still counts it: EBUSY)."""
        deadline = time.monotonic() + STOP_TIMEOUT
        while True:
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError as error:
                if error.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise Unavailable(f"cannot remove cgroup {self.path}: {error}") from None
                time.sleep(0.05)


def _cgroup_of(name: str) -> _Cgroup:
    if (CGROUP_ROOT / "cgroup.controllers").exists():  # v2
        return _Cgroup(CGROUP_ROOT / f"ramster-swap-{name}", {"memory.swap.max": "0"})
    return _Cgroup(CGROUP_ROOT / "memory" / f"ramster-swap-{name}", {"memory.swappiness": "0"})


def _keep_out_of_swap(name: str, pid: int) -> None:
    try:
        _cgroup_of(name).add(pid)
    except OSError as error:
        log.warning(
            "nbdfuse (pid %d) may be swapped out: no memory cgroup without swap: %s", pid, error
        )
