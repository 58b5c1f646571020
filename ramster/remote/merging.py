"""`MergedPuts`: the second copies of concurrent puts to one peer, sent together.

The first put finding the peer idle sends its pages at once, as it would alone; puts arriving
while a send is in flight wait for it to end, then go out together, in as few messages as
`MAX_BATCH` allows. So a burst of puts costs the peer a few large calls instead of one call per
put, and a lone put waits for nothing more than its own call. Each put gets its own results, or
the error of the message its pages went in; a put whose caller is gone before its turn is not
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


@dataclass(frozen=True, slots=True)
class _Waiting:
    shipments: Sequence[Shipment]
    owners: Sequence[PoolRecord]
    answer: asyncio.Future[list[bool]]


class MergedPuts:
    """Puts of pages on `link`, at most one send in flight, the puts that wait merged."""

    def __init__(self, link: Peer) -> None:
        self.link = link
        self._waiting: list[_Waiting] = []
        self._busy = False
        self._next: asyncio.Task[None] | None = None
        self.sends = 0
        """Messages sent so far (a merged send of several puts counts once per message)."""

    def __repr__(self) -> str:
        waiting = len(self._waiting)
        return f"<MergedPuts node {self.link.number} sends={self.sends} waiting={waiting}>"

    async def put(self, shipments: Sequence[Shipment], owners: Sequence[PoolRecord]) -> list[bool]:
        """Store pages on the peer; True for each it took. Raises the `RamsterError` of the
        message they went in."""
        if self._busy:
            answer: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
            self._waiting.append(_Waiting(shipments, owners, answer))
            return await answer
        self._busy = True
        try:
            self.sends += 1
            return await self.link.put(shipments, owners)
        finally:
            self._send_waiting()

    def _send_waiting(self) -> None:
        """The send in flight ended: the puts waiting meanwhile go now, else the peer is idle."""
        waiting = [put for put in self._waiting if not put.answer.done()]
        self._waiting = []
        if not waiting:
            self._busy = False
            return
        self._next = asyncio.get_running_loop().create_task(self._send(waiting))

    async def _send(self, waiting: list[_Waiting]) -> None:
        try:
            await asyncio.gather(*(self._send_message(group) for group in _messages(waiting)))
        finally:
            self._send_waiting()

    async def _send_message(self, group: list[_Waiting]) -> None:
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
        start = 0
        for put in group:
            if not put.answer.done():
                put.answer.set_result(stored[start : start + len(put.shipments)])
            start += len(put.shipments)


def _messages(waiting: list[_Waiting]) -> list[list[_Waiting]]:
    """The waiting puts in order, grouped into messages of at most `MAX_BATCH` pages (a put of
    more goes alone, as it would have)."""
    groups: list[list[_Waiting]] = []
    pages = 0
    for put in waiting:
        if groups and pages + len(put.shipments) <= MAX_BATCH:
            groups[-1].append(put)
            pages += len(put.shipments)
        else:
            groups.append([put])
            pages = len(put.shipments)
    return groups
