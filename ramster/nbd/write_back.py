"""The write-back of one export (`ramster.nbd.volume`): the second copies of its acknowledged
writes, made after them, as a disk writes its volatile cache back.

A volume admits a write (`admit`: at most `WRITE_BACK_BYTES` of writes whose copies are on
their way, a write past that waits), puts its pages, acknowledges it and queues its copies
(`queue`). One copier per volume sends them: the copies of the writes queued while its peer
call is out go together in the next call (a call's fixed cost on both nodes paid once). A page
no peer took a copy of, still as written, is handed to the volume's `spill_copy`; one that could
not be spilled stays with its one copy and is counted for the next FLUSH to report
(`take_one_copy`). `copies_made` returns once the copies of every write queued before it are
made or refused: what FLUSH, FUA and a node's stop wait for.

Not here: the pages and the spill themselves (`ramster.nbd.volume`), making a copy
(`ramster.tiered.Copying`).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from ramster.nbd.bounds import ByteBudget
from ramster.nbd.spill import PAGE
from ramster.remote.handles import Shipment
from ramster.tiered import Copying

log = logging.getLogger("ramster.nbd")

WRITE_BACK_BYTES = 8 << 20
"""Bytes of acknowledged writes whose copies may be on their way at once, per volume: 16 of the
kernel's 512 KiB swap WRITEs. The pages are held meanwhile (read back, packed) to be sent."""

Place = TypeVar("Place", bound=Hashable)
"""Where a write's pages are, as the volume knows it: writes of one place are copied together."""


class WriteBack(Generic[Place]):
    """The copies of one volume's writes; `spill_copy(place, shipment)` moves a page no peer
    took to the spill (False: it could not), `counters` are the registry's."""

    def __init__(
        self, counters: dict[str, int], spill_copy: Callable[[Place, Shipment], bool]
    ) -> None:
        self._counters = counters
        self._spill_copy = spill_copy
        self._budget = ByteBudget(WRITE_BACK_BYTES)
        self._queued: list[tuple[Place, Copying, int, asyncio.Future[None]]] = []
        """The copies of acknowledged writes not sent yet, with their budget bytes and the
        future set once they are made (or refused)."""
        self._copying: set[asyncio.Future[None]] = set()
        self._copier: asyncio.Task[None] | None = None
        self._one_copy = 0

    def __repr__(self) -> str:
        return f"<WriteBack queued={len(self._queued)} writes={len(self._copying)}>"

    async def admit(self, pages: int) -> int:
        """Wait until a write of `pages` pages may be acknowledged before its copies; its cost,
        to hand to `queue` with them."""
        cost = min(pages * PAGE, WRITE_BACK_BYTES)
        await self._budget.take(cost)
        return cost

    def queue(self, place: Place, copying: Copying | None, cost: int) -> None:
        """The copies of an admitted write (None: it stored nothing), for the copier."""
        if copying is None:
            self._budget.give(cost)
            return
        done = asyncio.get_running_loop().create_future()
        self._copying.add(done)
        done.add_done_callback(self._copying.discard)
        self._queued.append((place, copying, cost, done))
        if self._copier is None or self._copier.done():
            self._copier = asyncio.create_task(self._copy_queued())

    async def copies_made(self) -> None:
        """Return once the copies of every write queued so far are made (or refused)."""
        if self._copying:
            await asyncio.wait(list(self._copying))

    def take_one_copy(self) -> int:
        """Pages left with one copy since the last call (no peer took one, no spill could)."""
        pages, self._one_copy = self._one_copy, 0
        return pages

    async def _copy_queued(self) -> None:
        """Send the copies of every write queued, those queued together in one call, until
        none is left."""
        while self._queued:
            queued, self._queued = self._queued, []
            for place, group in itertools.groupby(queued, key=lambda entry: entry[0]):
                entries = list(group)
                copying = functools.reduce(Copying.joined, (entry[1] for entry in entries))
                try:
                    await self._copy(place, copying, sum(entry[2] for entry in entries))
                except Exception:  # the next groups still go
                    log.exception("NBD: the copies of %d pages failed", copying.pages)
                finally:
                    for entry in entries:
                        entry[3].set_result(None)

    async def _copy(self, place: Place, copying: Copying, cost: int) -> None:
        """Make the copies; a page no peer took (still as written) goes to the spill if it can,
        else stays with one copy for the next FLUSH to report."""
        try:
            left = await copying.made()
        except Exception:  # the pages stay here, each with its one copy
            log.exception("NBD: the copies of %d pages failed", copying.pages)
            self._one_copy += copying.pages
            return
        finally:
            self._budget.give(cost)
        # No await from here on: the pages of `left` are as `made` found them.
        refused = [s for s in copying.shipments if (s.oid, s.index) in left]
        if refused:
            self._counters["nbd_copies_refused"] += len(refused)
            kept = sum(not self._spill_copy(place, shipment) for shipment in refused)
            self._one_copy += kept
            log.warning(
                "NBD: no peer took the copies of %d pages: %d spilled, %d left with one copy",
                len(refused),
                len(refused) - kept,
                kept,
            )
