"""A corpus of real 4 KiB pages, the data every benchmark and the demo store.

Most pages are read from ``/proc/self/mem`` of a child Python process that first builds a
realistic heap (dicts of records, strings, floats, lists of ints); the rest are pages of text
(the standard library's source), of binary code (the Python executable and shared libraries),
and zero pages, in proportions close to what a swapping process sends. The heap pages are real
memory and differ a little from run to run; the mix and the count do not.
"""

from __future__ import annotations

import random
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from ramster.errors import FailedPrecondition

PAGE_SIZE = 4096

_HEAP_CHILD = r"""
import random, sys
random.seed(int(sys.argv[1]))
wanted = int(sys.argv[2])
names = ["alice", "bob", "carol", "dave", "erin", "frank"]
records = {}
for i in range(wanted * 6):
    key = f"user:{i}:{random.choice(names)}"
    records[key] = {"id": i, "score": random.random(), "name": key.upper(),
                    "tags": [random.randint(0, 1000) for _ in range(3)]}
floats = [random.random() for _ in range(wanted * 40)]
strings = [str(i) * 3 for i in range(wanted * 20)]
pages = []
with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", buffering=0) as mem:
    for line in maps:
        fields = line.split()
        anonymous = len(fields) == 5 or fields[5] == "[heap]"
        if not anonymous or not fields[1].startswith("rw"):
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        try:
            mem.seek(start)
            data = mem.read(end - start)
        except OSError:
            continue
        pages.extend(data[i:i + 4096] for i in range(0, len(data) - 4095, 4096))
step = max(1, len(pages) // wanted)
out = b"".join(pages[::step][:wanted])
sys.stdout.buffer.write(out)
"""


@dataclass(frozen=True)
class Corpus:
    """Pages by kind; `pages` is all of them, interleaved deterministically."""

    heap: list[bytes]
    text: list[bytes]
    binary: list[bytes]
    zero: list[bytes]
    pages: list[bytes]

    def __repr__(self) -> str:
        return (
            f"<Corpus pages={len(self.pages)} heap={len(self.heap)} text={len(self.text)} "
            f"binary={len(self.binary)} zero={len(self.zero)}>"
        )


def heap_pages(count: int, seed: int = 1) -> list[bytes]:
    """`count` pages of a real Python heap, read from a child process's own memory."""
    out = subprocess.run(
        [sys.executable, "-c", _HEAP_CHILD, str(seed), str(count)],
        check=True,
        capture_output=True,
    ).stdout
    return _split(out, count)


def text_pages(count: int) -> list[bytes]:
    """`count` pages of Python source text from the standard library."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    return _pages_of_files(sorted(stdlib.rglob("*.py")), count)


def binary_pages(count: int) -> list[bytes]:
    """`count` pages of machine code and data: the interpreter and its extension modules."""
    dynload = Path(sysconfig.get_paths()["stdlib"]) / "lib-dynload"
    files = [Path(sys.executable).resolve(), *sorted(dynload.glob("*.so"))]
    return _pages_of_files(files, count)


def build_corpus(count: int = 8192, seed: int = 1) -> Corpus:
    """`count` pages: 70 % heap, 15 % text, 10 % binary, 5 % zero, shuffled with `seed`."""
    n_text, n_binary, n_zero = count * 15 // 100, count * 10 // 100, count * 5 // 100
    n_heap = count - n_text - n_binary - n_zero
    heap = heap_pages(n_heap, seed)
    text, binary = text_pages(n_text), binary_pages(n_binary)
    zero = [bytes(PAGE_SIZE)] * n_zero
    pages = heap + text + binary + zero
    random.Random(seed).shuffle(pages)
    return Corpus(heap, text, binary, zero, pages)


def _pages_of_files(files: list[Path], count: int) -> list[bytes]:
    pages: list[bytes] = []
    for path in files:
        data = path.read_bytes()
        whole = range(0, len(data) - PAGE_SIZE + 1, PAGE_SIZE)
        pages.extend(data[i : i + PAGE_SIZE] for i in whole)
        if len(pages) >= count:
            return pages[:count]
    raise FailedPrecondition(f"only {len(pages)} pages of {count} found in {len(files)} files")


def _split(blob: bytes, count: int) -> list[bytes]:
    pages = [blob[i : i + PAGE_SIZE] for i in range(0, len(blob), PAGE_SIZE)]
    if len(pages) != count or len(pages[-1]) != PAGE_SIZE:
        raise RuntimeError(f"heap child returned {len(blob)} bytes, not {count} pages")
    return pages
