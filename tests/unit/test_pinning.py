"""The node's malloc settings (`ramster.pinning`), each in a Python process of its own: they
last for the life of the process that sets them."""

from __future__ import annotations

import subprocess
import sys

PAGES = 512
ROUNDS = 50

CHURN = f"""
import resource, sys
from ramster.pinning import fix_mmap_threshold, pad_heap_top
fix_mmap_threshold()  # as a node does
if sys.argv[1] == "padded":
    assert pad_heap_top()
held = [b""] * {PAGES}
def request():  # a swap WRITE: 4 KiB pages taken, stored, freed
    for i in range({PAGES}):
        held[i] = bytes(4096)
    for i in range({PAGES}):
        held[i] = b""
request()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range({ROUNDS}):
    request()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(heap: str) -> int:
    """Page faults of `ROUNDS` requests that each take and free `PAGES` pages, after one."""
    done = subprocess.run(
        [sys.executable, "-c", CHURN, heap], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


def test_a_padded_heap_keeps_the_pages_one_request_freed_for_the_next() -> None:
    assert page_faults("padded") == 0
    # Without the pad the heap gives back its top at every free and faults it in again.
    assert page_faults("default") >= ROUNDS * PAGES * 9 // 10
