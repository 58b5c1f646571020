"""What keeps one NBD server bounded: a byte budget for payloads in flight (and for writes whose
copies are on their way), and warnings
throttled per kind (a full spill under swap refuses every write; the log says so every few
seconds, with the count held back, not once per write). Used by `ramster.nbd.server`."""

from __future__ import annotations

import asyncio
import logging
import time


class ByteBudget:
    """At most `limit` bytes taken at once (by a connection's reader loop; by a volume's
    writes, whose copies are on their way); a take of more than `limit` would wait for ever,
    so a taker never asks for one."""

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._freed = asyncio.Event()

    async def take(self, size: int) -> None:
        while self._free < size:
            self._freed.clear()
            await self._freed.wait()
        self._free -= size

    def give(self, size: int) -> None:
        self._free += size
        self._freed.set()


class Throttle:
    """Warnings of one kind at most once per `interval` seconds; the next one that is logged
    says how many were held back."""

    def __init__(self, log: logging.Logger, interval: float) -> None:
        self._log = log
        self._interval = interval
        self._next: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warning(self, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now < self._next.get(kind, 0.0):
            self._held[kind] = self._held.get(kind, 0) + 1
            return
        self._next[kind] = now + self._interval
        held = self._held.pop(kind, 0)
        if held:
            self._log.warning(f"{message} (and {held} more like it held back)", *args)
        else:
            self._log.warning(message, *args)
