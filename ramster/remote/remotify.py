"""`Remotify`: one shipping round — above the high watermark, with the `ramster` param on, ship
the oldest pages in batches to peers until the store is below the low watermark (every own
persistent page, whatever the watermarks, while the node evacuates).

Up to `in_flight` batches are on the wire at once; queued flushes go out before each batch; a
page never goes to the peer that holds its other copy. Not here: the loop that runs rounds
(`ramster.remote.layer`), which pages and how many (`ramster.remote.shipping`,
`ramster.remote.policy`), where to (`ramster.remote.peers`).
"""

from __future__ import annotations

import asyncio
import time
from asyncio import FIRST_COMPLETED
from collections import defaultdict
from collections.abc import Sequence

from ramster.backend import Backend
from ramster.remote.flushes import Flushes
from ramster.remote.handles import OriginTmem, Shipment
from ramster.remote.peers import Peers
from ramster.remote.policy import RemotifyConfig, bytes_to_ship, classes_to_ship
from ramster.remote.shipping import complete_shipments, return_shipments, take_shipments


class Remotify:
    """Shipping rounds of the backend's pages to `peers`; a round and a homecoming exclude each
    other through `shipping`."""

    def __init__(
        self,
        backend: Backend,
        peers: Peers,
        flushes: Flushes,
        config: RemotifyConfig,
        shipping: asyncio.Lock,
    ) -> None:
        self._backend = backend
        self._peers = peers
        self._flushes = flushes
        self._config = config
        self._shipping = shipping
        self._unshippable: set[bool] = set()  # classes with no page any peer may take now
        self.evacuating = False
        self.counters = dict.fromkeys(("remotify_batches", "remotify_busy_microseconds"), 0)

    def __repr__(self) -> str:
        return f"<Remotify active={self.active} evacuating={self.evacuating}>"

    def reconsider(self) -> None:
        """The view or the params changed: every class may find a peer that takes it again."""
        self._unshippable.clear()

    @property
    def active(self) -> bool:
        """What peers hold for this node is changing: a round (or a homecoming) runs, or
        flushes wait for the next round."""
        tmem = self._backend.tmem
        flushing = tmem is not None and bool(tmem.table.elsewhere.flushes)
        return self._shipping.locked() or flushing

    def under_pressure(self) -> bool:
        """The store is past its high watermark: a round should start now."""
        store = self._backend.store
        return (
            store is not None
            and store.used_bytes > store.config.high_watermark * store.config.memory
        )

    async def tick(self) -> int:
        """One round: send queued flushes, then ship while above the watermark; pages shipped.

        Up to `config.in_flight` batches are on the wire at once, so packing the next batch here
        overlaps with the peer storing the last one."""
        async with self._shipping:
            return await self._tick()

    async def _tick(self) -> int:
        tmem, store = self._backend.tmem, self._backend.store
        if tmem is None or store is None:
            return 0
        await self._flushes.send(tmem)
        peers = self._peers
        if peers.recovered and not peers.introduced.issuperset(peers.links):
            await peers.introduce()
        config = store.config
        evacuating = self.evacuating and self._backend.ramster
        if not evacuating and not bytes_to_ship(
            store.used_bytes, config.memory, config.high_watermark, config.low_watermark
        ):
            return 0
        low = 0.0 if evacuating else config.low_watermark * config.memory
        shipped = 0
        in_flight: dict[asyncio.Task[int], int] = {}  # batch -> its packed bytes
        classes = [True] if evacuating else classes_to_ship(self._backend.params)
        try:
            for persistent in classes:
                while store.used_bytes - sum(in_flight.values()) > low:
                    if persistent in self._unshippable:
                        break
                    order = peers.placement(self._backend.params.remote_target)
                    if not order:
                        break
                    shipments = take_shipments(
                        tmem.table, persistent, self._config.batch_pages, self._config.batch_bytes
                    )
                    if not shipments:
                        break
                    single = persistent and peers.copies_wanted() > 1
                    batches = _by_target(shipments, order, single)
                    if None in batches:  # every allowed peer holds their other copy already
                        return_shipments(tmem.table, batches.pop(None))
                    if not batches:
                        self._unshippable.add(persistent)
                        break
                    # Flushes queued before this batch go first (they carry versions, so even
                    # a late one cannot remove a newer copy, but early is cheaper).
                    await self._flushes.send(tmem)
                    for target, batch in batches.items():
                        assert target is not None
                        task = asyncio.create_task(self._ship(tmem, target, batch))
                        in_flight[task] = sum(len(s.page.payload) for s in batch)
                    while len(in_flight) >= self._config.in_flight:
                        done, _ = await asyncio.wait(in_flight, return_when=FIRST_COMPLETED)
                        for finished in done:
                            del in_flight[finished]
                            shipped += finished.result()
                if not peers.placement(self._backend.params.remote_target):
                    break  # no peer to ship to: the other classes would find none either
        finally:
            if in_flight:
                shipped += sum(await asyncio.gather(*in_flight))
        return shipped

    async def _ship(self, tmem: OriginTmem, target: int, shipments: list[Shipment]) -> int:
        started = time.perf_counter()
        stored = await self._peers.store_on(tmem, target, shipments)
        self.counters["remotify_batches"] += 1
        shipped = complete_shipments(tmem.table, target, shipments, stored)
        self.counters["remotify_busy_microseconds"] += int((time.perf_counter() - started) * 1e6)
        return shipped


def _by_target(
    shipments: Sequence[Shipment], order: Sequence[int], need_replica: bool
) -> dict[int | None, list[Shipment]]:
    """Shipments grouped by the best peer in `order` that does not hold their other copy; under
    None those that must wait (with `need_replica`, a page whose other copy is not made yet)."""
    batches: dict[int | None, list[Shipment]] = defaultdict(list)
    for shipment in shipments:
        target = None
        if shipment.replica is not None or not need_replica:
            target = next((n for n in order if n != shipment.replica), None)
        batches[target].append(shipment)
    return batches
