"""Keeping the processes that serve swap out of swap: a process the kernel must swap in before
it can serve the swap it waits on deadlocks.

`lock_memory` locks this process's memory (``mlockall``, every page once touched), where it
may: as root, or with an unlimited RLIMIT_MEMLOCK (``LimitMEMLOCK=infinity`` in systemd). With
a smaller limit it does not lock at all: future allocations past the limit would fail.
`set_io_flusher` marks this process (and what it starts) as one that writes back memory
(``PR_SET_IO_FLUSHER``: its allocations do not recurse into I/O reclaim), which needs
CAP_SYS_RESOURCE. Each says why in a warning when it cannot, and returns whether it did.

`fix_mmap_threshold` keeps this process's heap as large as what it holds: glibc raises its mmap
threshold to the size of any large block freed (up to 32 MiB), so after one large temporary
allocation (a dictionary's training: its samples joined, zstd's tables) every later block below that
size comes from the heap, where the holes freed blocks leave stay resident. A node that trained one
dictionary kept 7 MB more than its store held (of 15 MB: 1,370 bytes of RSS a stored page against
960). A threshold set explicitly stays where it is. `pad_heap_top` keeps some free heap at the top
of each malloc arena, so that the blocks one request frees and those the next one takes do not
shrink and grow the heap each time: a node serving NBD sets it (what a dictionary's training frees
in its thread's arena then stays resident, up to the pad; a node that trained one kept 0.5 bytes
more RSS a byte its store held). `give_back_free_heap` returns the free pages of every malloc arena
to the system (``malloc_trim``): a dictionary's training copies its samples in its thread's arena,
which by itself gives back only what lies above its last block in use (8 MB stayed resident while
the trained dictionary's bytes, made there last, were kept; `ramster.page_dictionary` now keeps
zstd's copy of them instead).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import resource

log = logging.getLogger("ramster.pinning")

MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT = 1, 2, 4
PR_SET_IO_FLUSHER = 57
M_TOP_PAD, M_MMAP_THRESHOLD = -2, -3
MMAP_THRESHOLD = 128 * 1024
"""glibc's default: blocks from 128 KiB up are mapped on their own and unmapped when freed."""
HEAP_TOP_PAD = 16 << 20
"""Free heap kept at its top rather than given back, and added to each growth (glibc's default:
128 KiB). A node serving swap puts 128 pages a write, their 4 KiB blocks freed once stored: with
the default its heap shrank and grew again at nearly every write, each page faulted in anew,
155,000 page faults in a 5 s swap run, a third of the node's CPU time (with this pad, under
5,000)."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _error() -> str:
    code = ctypes.get_errno()
    return errno.errorcode.get(code, str(code))


def lock_memory(what: str) -> bool:
    """Lock the memory of this process (`what` names it in the log)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if os.geteuid() != 0 and soft != resource.RLIM_INFINITY:
        log.warning(
            "%s is not locked in memory: RLIMIT_MEMLOCK is %d bytes (run it as root, or with "
            "LimitMEMLOCK=infinity): under memory pressure it may be swapped out and stall the "
            "swap it serves",
            what,
            soft,
        )
        return False
    if _libc().mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0:
        log.warning("%s is not locked in memory: mlockall failed (%s)", what, _error())
        return False
    log.info("%s is locked in memory", what)
    return True


def set_io_flusher(what: str) -> bool:
    """Mark this process, and the processes it starts from now on, as an I/O flusher."""
    if _libc().prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) != 0:
        log.warning(
            "%s is no I/O flusher: PR_SET_IO_FLUSHER failed (%s; it needs CAP_SYS_RESOURCE): its "
            "allocations may wait on reclaim that waits on it",
            what,
            _error(),
        )
        return False
    return True


def fix_mmap_threshold() -> bool:
    """Keep glibc's mmap threshold at `MMAP_THRESHOLD` for the life of this process; False
    where the C library has no ``mallopt`` (not glibc: it has no such threshold to raise)."""
    return _mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def pad_heap_top() -> bool:
    """Keep `HEAP_TOP_PAD` bytes of free heap at its top for the life of this process (glibc's
    ``M_TOP_PAD``); False where the C library has no ``mallopt``."""
    return _mallopt(M_TOP_PAD, HEAP_TOP_PAD)


def _mallopt(parameter: int, value: int) -> bool:
    mallopt = getattr(_libc(), "mallopt", None)
    return mallopt is not None and mallopt(parameter, value) == 1


def give_back_free_heap() -> None:
    """Give the free pages of every malloc arena back to the system (not glibc: nothing)."""
    malloc_trim = getattr(_libc(), "malloc_trim", None)
    if malloc_trim is not None:
        malloc_trim(0)
