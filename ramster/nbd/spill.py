"""The spill: a bounded local file for the pages the store refuses, so a block device takes
every write it can (the "real swap disk" behind frontswap, issue 13).

A store may refuse a page (poor compression, a full node, no peer for the second copy); an
export then writes it here, reads look here after the store, and a TRIM or a later write that
the store takes frees its slot. The file holds at most `capacity` pages of 4096 bytes, in slots
reused as they free; when every slot is taken, `store` says so and the write fails ENOSPC. Its
contents do not outlive the node: it is truncated when opened and when closed (the pages are
other programs' memory), and its mode is 0600.

Reads and writes are `pread` and `pwrite` on the event loop's thread: single pages that the page
cache absorbs; `sync` (NBD_CMD_FLUSH) runs `fsync` in a worker thread.

Not here: which pages go here (`ramster.nbd.exports`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable

from ramster.errors import FailedPrecondition

PAGE = 4096


class Spill:
    """A spill file at `path` of at most `size` bytes (whole pages), its pages kept by export
    uid and block."""

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        self.capacity = size // PAGE
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        except OSError as error:
            raise FailedPrecondition(
                f"nbd spill {path!r} cannot be opened: {error.strerror or error}"
            ) from None
        # By export, by block: a TRIM frees blocks with no tuple made per block, and skips an
        # export with nothing here at once.
        self._slots: dict[int, dict[int, int]] = {}
        self._pages = 0
        self._free: list[int] = []
        self._end = 0  # slots below it have been handed out at least once
        self._dirty = False
        self.counters = dict.fromkeys(("nbd_spill_stores", "nbd_spill_loads", "nbd_spill_full"), 0)

    def __repr__(self) -> str:
        return f"<Spill {self.path} pages={self._pages}/{self.capacity}>"

    @property
    def pages(self) -> int:
        return self._pages

    def pages_of(self, uid: int) -> int:
        return len(self._slots.get(uid, ()))

    def store(self, uid: int, block: int, page: bytes) -> bool:
        """Keep `page` as block `block` of export `uid`; False if the spill is full (nothing
        changed then)."""
        slots = self._slots.get(uid)
        slot = slots.get(block) if slots is not None else None
        new = slot is None
        if slot is None:
            if self._free:
                slot = self._free.pop()
            elif self._end < self.capacity:
                slot = self._end
                self._end += 1
            else:
                self.counters["nbd_spill_full"] += 1
                return False
        try:
            os.pwrite(self._fd, page, slot * PAGE)
        except OSError:
            if new:
                self._free.append(slot)
            raise
        if new:
            self._slots.setdefault(uid, {})[block] = slot
            self._pages += 1
        self._dirty = True
        self.counters["nbd_spill_stores"] += 1
        return True

    def load(self, uid: int, block: int) -> bytes | None:
        slot = self._slots.get(uid, {}).get(block)
        if slot is None:
            return None
        self.counters["nbd_spill_loads"] += 1
        return os.pread(self._fd, PAGE, slot * PAGE)

    def drop(self, uid: int, blocks: Iterable[int]) -> int:
        """Free the slots of `blocks` of export `uid`; how many it had here. A range of more
        blocks than the export has here is matched against those (a TRIM of a large range)."""
        slots = self._slots.get(uid)
        if not slots:
            return 0
        if isinstance(blocks, range) and len(blocks) > len(slots):
            blocks = [block for block in slots if block in blocks]
        freed = [slot for block in blocks if (slot := slots.pop(block, None)) is not None]
        self._free.extend(freed)
        self._pages -= len(freed)
        if not slots:
            del self._slots[uid]
        return len(freed)

    def drop_export(self, uid: int) -> int:
        """Free every slot of export `uid`; how many."""
        slots = self._slots.pop(uid, {})
        self._free.extend(slots.values())
        self._pages -= len(slots)
        return len(slots)

    async def sync(self) -> None:
        """Make every page stored so far durable in the file (NBD_CMD_FLUSH)."""
        if self._dirty:
            self._dirty = False
            await asyncio.to_thread(os.fsync, self._fd)

    def close(self) -> None:
        """Forget every page and empty the file: they are other programs' memory."""
        if self._fd < 0:
            return
        self._slots.clear()
        self._pages = 0
        os.ftruncate(self._fd, 0)
        os.close(self._fd)
        self._fd = -1
