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

from ramster.errors import FailedPrecondition

PAGE = 4096

SpillKey = tuple[int, int]
"""(export uid, page index)."""


class Spill:
    """A spill file at `path` of at most `size` bytes (whole pages)."""

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        self.capacity = size // PAGE
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        except OSError as error:
            raise FailedPrecondition(
                f"nbd spill {path!r} cannot be opened: {error.strerror or error}"
            ) from None
        self._slots: dict[SpillKey, int] = {}
        self._per_export: dict[int, int] = {}
        self._free: list[int] = []
        self._end = 0  # slots below it have been handed out at least once
        self._dirty = False
        self.counters = dict.fromkeys(("nbd_spill_stores", "nbd_spill_loads", "nbd_spill_full"), 0)

    def __repr__(self) -> str:
        return f"<Spill {self.path} pages={len(self._slots)}/{self.capacity}>"

    @property
    def pages(self) -> int:
        return len(self._slots)

    def pages_of(self, uid: int) -> int:
        return self._per_export.get(uid, 0)

    def store(self, key: SpillKey, page: bytes) -> bool:
        """Keep `page` under `key`; False if the spill is full (nothing changed then)."""
        slot = self._slots.get(key)
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
            if key not in self._slots:
                self._free.append(slot)
            raise
        if key not in self._slots:
            self._slots[key] = slot
            self._per_export[key[0]] = self.pages_of(key[0]) + 1
        self._dirty = True
        self.counters["nbd_spill_stores"] += 1
        return True

    def load(self, key: SpillKey) -> bytes | None:
        slot = self._slots.get(key)
        if slot is None:
            return None
        self.counters["nbd_spill_loads"] += 1
        return os.pread(self._fd, PAGE, slot * PAGE)

    def drop(self, key: SpillKey) -> bool:
        """Free the slot of `key`; whether there was one."""
        slot = self._slots.pop(key, None)
        if slot is None:
            return False
        self._free.append(slot)
        left = self._per_export[key[0]] - 1
        if left:
            self._per_export[key[0]] = left
        else:
            del self._per_export[key[0]]
        return True

    def drop_export(self, uid: int) -> int:
        """Free every slot of export `uid`; how many."""
        keys = [key for key in self._slots if key[0] == uid]
        for key in keys:
            self.drop(key)
        return len(keys)

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
        self._per_export.clear()
        os.ftruncate(self._fd, 0)
        os.close(self._fd)
        self._fd = -1
