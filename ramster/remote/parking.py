"""`Parking`: the links of peers that left the view while calls this node abandoned on them may
still land there, kept open until the peer comes back (or is let go of).

A call whose answer never came (a put cut off by a partition, abandoned when the peer leaves the
view, or past its deadline) may still be delivered later: its request can sit in the network,
retransmitted, and reach the peer once it is reachable again. The flushes that settle such a
call (`Peers.unsure`) must therefore arrive after it, which only the connection that carried it
ensures: a peer's calls and their answers are ordered on one connection, never across two. So
a peer that leaves the view with puts in flight, or with flushes still owed to it, keeps its
link (calls in flight on it fail at once, `Unavailable`, without closing it), and gets that
link back if it returns at the same address under the same epoch; the flushes go out on it
first (`Peers.introduce`). A peer that returns restarted or elsewhere, or that is let go of,
has its parked link closed: nothing abandoned can reach a new process. Not here: the view and
the flush queue (`ramster.remote.peers`), the wire (`ramster.rpc.peer_link`).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Coroutine
from typing import Any

from ramster.errors import Unavailable
from ramster.remote.peer import Peer


class Parking:
    """The puts in flight to each peer, and the links of peers out of the view, by number."""

    def __init__(self) -> None:
        self._puts: defaultdict[int, set[asyncio.Future[list[bool]]]] = defaultdict(set)
        self._parked: dict[int, Peer] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self.corrupt_of_closed = 0
        """Corrupt copies turned away by links closed for good (`Peer.corrupt_pages`)."""

    def __repr__(self) -> str:
        return f"<Parking parked={sorted(self._parked)}>"

    def corrupt_pages(self) -> int:
        """The corrupt copies parked links and links closed for good turned away."""
        return self.corrupt_of_closed + sum(link.corrupt_pages for link in self._parked.values())

    async def put(self, number: int, put: Coroutine[Any, Any, list[bool]]) -> list[bool]:
        """Run `put`, a put to peer `number`, abandoned when the peer leaves the view (`park`):
        then it raises `Unavailable` at once, as a put that failed (the caller flushes what it
        sent)."""
        calls = self._puts[number]
        call = asyncio.ensure_future(put)
        calls.add(call)
        try:
            return await call
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the caller was cancelled, not the call
            raise Unavailable(f"node {number} left the view during the put") from None
        finally:
            calls.discard(call)

    async def park(self, link: Peer, owed: bool) -> None:
        """Peer `link.number` left the view: its puts in flight are abandoned; its link stays
        open if any were, or if flushes are `owed` to it, else it is closed."""
        calls = self._puts.pop(link.number, set())
        for call in calls:
            call.cancel()
        if calls or owed:
            self._parked[link.number] = link
        else:
            await self._close(link)

    async def take(self, number: int, address: str) -> Peer | None:
        """The parked link of peer `number`, back in the view at `address` under the epoch it
        left with; None if there is none (a parked link to another address is closed)."""
        link = self._parked.pop(number, None)
        if link is not None and link.address != address:
            await self._close(link)
            return None
        return link

    async def drop(self, number: int) -> None:
        """Peer `number` restarted: its parked link reaches a process that is gone."""
        link = self._parked.pop(number, None)
        if link is not None:
            await self._close(link)

    def let_go(self, number: int) -> None:
        """Peer `number` is let go of: its parked link is closed (in the background, as letting
        go is not a coroutine)."""
        link = self._parked.pop(number, None)
        if link is not None:
            task = asyncio.get_running_loop().create_task(self._close(link))
            self._closing.add(task)  # held until done: the loop keeps only weak references
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """The node stops: every parked link is closed."""
        for number in list(self._parked):
            await self.drop(number)
        await asyncio.gather(*self._closing)

    async def _close(self, link: Peer) -> None:
        self.corrupt_of_closed += link.corrupt_pages
        await link.close()
