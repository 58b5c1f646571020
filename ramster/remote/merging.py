"""`MergedPuts`: the second copies of concurrent puts to one peer, sent together.

A put finding fewer than `WINDOW` sends in flight to the peer sends its pages at once, as it
would alone; puts arriving while the window is full wait, and each send that ends takes the puts
waiting then in one message (as many as `MAX_BATCH` pages allow). So a burst of puts costs the
peer a few large calls instead of one call per put, the memory pinned by copies on the wire is
bounded, and a lone put waits for nothing more than its own call. Each put gets its own results,
or the error of the message its pages went in; a put whose caller is gone before its turn is not
sent. Not here: which peer takes which page (`ramster.remote.peers`), the acknowledgement rule
(`ramster.remote.replication`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from ramster.remote.handles import Shipment
from ramster.remote.peer import Peer
from ramster.tmem.pool import PoolRecord
from ramster.wire.limits import MAX_BATCH

WINDOW = 4
"""Sends in flight to one peer at once, as before merging for up to that many concurrent puts
(the client keeps as many messages in flight); the puts beyond wait and go merged."""


@dataclass(frozen=True, slots=True)
class _Waiting:
    shipments: Sequence[Shipment]
    owners: Sequence[PoolRecord]
    answer: asyncio.Future[list[bool]]


class MergedPuts:
    """Puts of pages on `link`: at most `window` sends in flight, the puts that wait for one
    merged."""

    def __init__(self, link: Peer, window: int = WINDOW) -> None:
        self.link = link
        self._window = window
        self._waiting: list[_Waiting] = []
        self._in_flight = 0
        self._sending: set[asyncio.Task[None]] = set()
        self.sends = 0
        """Messages sent so far (a merged send of several puts counts once)."""

    def __repr__(self) -> str:
        waiting = len(self._waiting)
        return f"<MergedPuts node {self.link.number} sends={self.sends} waiting={waiting}>"

    async def put(self, shipments: Sequence[Shipment], owners: Sequence[PoolRecord]) -> list[bool]:
        """Store pages on the peer; True for each it took. Raises the `RamsterError` of the
        message they went in."""
        if self._in_flight >= self._window:
            answer: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
            self._waiting.append(_Waiting(shipments, owners, answer))
            return await answer
        self._in_flight += 1
        self.sends += 1
        try:
            return await self.link.put(shipments, owners)
        finally:
            self._in_flight -= 1
            self._send_waiting()

    def _send_waiting(self) -> None:
        """A send ended: the puts waiting meanwhile go, merged, while the window has room."""
        self._waiting = [put for put in self._waiting if not put.answer.done()]
        while self._waiting and self._in_flight < self._window:
            group = _message(self._waiting)
            self._waiting = self._waiting[len(group) :]
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._send(group))
            self._sending.add(task)  # held until done: the loop keeps only weak references
            task.add_done_callback(self._sending.discard)

    async def _send(self, group: list[_Waiting]) -> None:
        shipments = [s for put in group for s in put.shipments]
        owners = {record.uid: record for put in group for record in put.owners}
        self.sends += 1
        try:
            stored = await self.link.put(shipments, list(owners.values()))
        except asyncio.CancelledError:  # the node stops: nobody is answered
            for put in group:
                put.answer.cancel()
            raise
        except Exception as error:
            for put in group:
                if not put.answer.done():
                    put.answer.set_exception(error)
            return
        finally:
            self._in_flight -= 1
            self._send_waiting()
        start = 0
        for put in group:
            if not put.answer.done():
                put.answer.set_result(stored[start : start + len(put.shipments)])
            start += len(put.shipments)


def _message(waiting: list[_Waiting]) -> list[_Waiting]:
    """The first waiting puts that fit one message of at most `MAX_BATCH` pages (at least one:
    a put of more goes alone, as it would have)."""
    pages = len(waiting[0].shipments)
    count = 1
    while count < len(waiting) and pages + len(waiting[count].shipments) <= MAX_BATCH:
        pages += len(waiting[count].shipments)
        count += 1
    return waiting[:count]
