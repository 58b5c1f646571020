"""`RemoteLayer`: the async half of RAMster on one node.

It keeps a `PeerLink` per live member, and in the background, every `interval` or when woken,
first sends the queued flushes of remote copies, then — above the high watermark, with the
`ramster` param on — ships the oldest pages in batches to the chosen peer until the store is
below the low watermark. It serves gets of remote pages (one request per page however many
callers wait for it) and, when `ramster` is switched off, brings persistent pages home before
the switch is reported. Counters keep the kernel's names.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from asyncio import FIRST_COMPLETED
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace

from nodemanager.model import MemberInfo
from ramster.backend import Backend
from ramster.errors import FailedPrecondition, RamsterError
from ramster.remote.links import PeerLink
from ramster.remote.policy import RemotifyConfig, bytes_to_ship, classes_to_ship, pick_target
from ramster.tmem import Tmem
from ramster.tmem.remote import RemoteFlush, RemoteRef, Shipment
from ramster.tmem.shipping import (
    complete_shipments,
    drain_flushes,
    drop_remote,
    localify,
    remote_refs,
    repatriate,
    take_shipments,
)
from ramster.tmem.store import PackedPage

log = logging.getLogger("ramster.remote")

LinkFactory = Callable[[int, str, int, str, float], PeerLink]
"""Builds the link to a peer: (number, address, this node's number, epoch, timeout)."""

FetchKey = tuple[int, int, int, bool]
"""(obj_id, index, version, free): concurrent gets of one remote page share one request."""


class RemoteLayer:
    """Links to peers, the shipping loop, and remote gets for node `me` of epoch `epoch`."""

    def __init__(
        self,
        backend: Backend,
        me: int,
        epoch: str,
        config: RemotifyConfig,
        link_factory: LinkFactory = PeerLink,
    ) -> None:
        self._backend = backend
        self._link_factory = link_factory
        self.me = me
        self._epoch = epoch
        self.config = config
        self.members: dict[int, MemberInfo] = {}
        self._links: dict[int, PeerLink] = {}
        self._failed_until: dict[int, float] = {}
        self._inflight: dict[FetchKey, asyncio.Future[PackedPage | None]] = {}
        self._wake = asyncio.Event()
        self._corrupt_of_gone = 0
        self._shipping = asyncio.Lock()  # a shipping round and bring_home exclude each other
        self._task: asyncio.Task[None] | None = None
        self.counters = dict.fromkeys(
            (
                "remote_pages_flushed",
                "remote_page_flushes_failed",
                "remote_objects_flushed",
                "remote_pools_flushed",
                "remote_gets_sent",
                "remotify_batches",
                "remotify_busy_microseconds",
            ),
            0,
        )

    def __repr__(self) -> str:
        return f"<RemoteLayer node {self.me} peers={sorted(self._links)}>"

    def all_counters(self) -> dict[str, int]:
        """The layer's counters, with the corrupt copies every peer link turned away."""
        corrupt = sum(link.corrupt_pages for link in self._links.values())
        return {**self.counters, "remote_pages_corrupt": corrupt + self._corrupt_of_gone}

    # -- membership --------------------------------------------------------------------------

    async def set_members(self, members: dict[int, MemberInfo]) -> None:
        """Follow the cluster view: open links to new peers, close links to gone ones."""
        self.members = dict(members)
        for number, info in members.items():
            link = self._links.get(number)
            if number == self.me or (link is not None and link.address == info.address):
                continue
            if link is not None:
                await link.close()
            self._links[number] = self._link_factory(
                number, info.address, self.me, self._epoch, self.config.peer_timeout
            )
        for number in [n for n in self._links if n not in members]:
            gone = self._links.pop(number)
            self._corrupt_of_gone += gone.corrupt_pages
            await gone.close()
        self._wake.set()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ramster-remotify")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for link in self._links.values():
            await link.close()
        self._links.clear()

    def wake(self) -> None:
        self._wake.set()

    def note_pressure(self) -> None:
        """Called after puts: start shipping now if the store is past its high watermark."""
        store = self._backend.store
        if (
            store is not None
            and store.used_bytes > store.config.high_watermark * store.config.memory
        ):
            self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.interval)
            self._wake.clear()
            try:
                await self.tick()
            except Exception:
                log.exception("remotify round failed")

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
        await self._send_flushes(tmem)
        config = store.config
        if not bytes_to_ship(
            store.used_bytes, config.memory, config.high_watermark, config.low_watermark
        ):
            return 0
        low = config.low_watermark * config.memory
        shipped = 0
        in_flight: dict[asyncio.Task[int], int] = {}  # batch -> its packed bytes
        classes = classes_to_ship(self._backend.params)
        try:
            for persistent in classes:
                while store.used_bytes - sum(in_flight.values()) > low:
                    target = pick_target(self.members, self.me, self._backend.params, self._skip())
                    if target is None or target not in self._links:
                        break
                    shipments = take_shipments(
                        tmem, persistent, self.config.batch_pages, self.config.batch_bytes
                    )
                    if not shipments:
                        break
                    # Flushes queued before this batch go first (they carry versions, so even
                    # a late one cannot remove a newer copy, but early is cheaper).
                    await self._send_flushes(tmem)
                    batch = asyncio.create_task(self._ship(tmem, target, shipments))
                    in_flight[batch] = sum(len(s.page.payload) for s in shipments)
                    if len(in_flight) >= self.config.in_flight:
                        done, _ = await asyncio.wait(in_flight, return_when=FIRST_COMPLETED)
                        for finished in done:
                            del in_flight[finished]
                            shipped += finished.result()
                else:
                    continue
                if target is None or target not in self._links:
                    break  # no peer to ship to: the other classes would find none either
        finally:
            if in_flight:
                shipped += sum(await asyncio.gather(*in_flight))
        return shipped

    async def _ship(self, tmem: Tmem, target: int, shipments: list[Shipment]) -> int:
        started = time.perf_counter()
        try:
            stored = await self._links[target].put(shipments)
        except RamsterError as error:
            self._mark_failed(target, error)
            stored = [False] * len(shipments)
        self.counters["remotify_batches"] += 1
        if not any(stored):
            self._mark_failed(target, None)
        shipped = complete_shipments(tmem, target, shipments, stored)
        self._charge_target(target, shipments, stored)
        self.counters["remotify_busy_microseconds"] += int((time.perf_counter() - started) * 1e6)
        return shipped

    # -- flushes -----------------------------------------------------------------------------

    async def _send_flushes(self, tmem: Tmem) -> None:
        flushes = drain_flushes(tmem)
        by_node: dict[int, list[RemoteFlush]] = defaultdict(list)
        for flush in flushes:
            by_node[flush.node].append(flush)
        for node, batch in by_node.items():
            link = self._links.get(node)
            if link is None:  # the holder left: its copies went with it
                continue
            try:
                await link.flush(batch)
            except RamsterError as error:
                self.counters["remote_page_flushes_failed"] += len(batch)
                log.warning("flushes to node %d failed: %s", node, error.message)
                continue
            for flush in batch:
                kind = (
                    "remote_pools_flushed"
                    if flush.oid is None
                    else "remote_objects_flushed"
                    if flush.index is None
                    else "remote_pages_flushed"
                )
                self.counters[kind] += 1

    # -- gets --------------------------------------------------------------------------------

    async def fetch(self, refs: Sequence[RemoteRef], free: bool) -> list[PackedPage | None]:
        """The pages of `refs`, checked against the tree again once they arrive."""
        futures = []
        wanted: dict[int, list[RemoteRef]] = defaultdict(list)
        loop = asyncio.get_running_loop()
        for ref in refs:
            key = (ref.obj_id, ref.index, ref.version, free)
            future = self._inflight.get(key)
            if future is None:
                future = self._inflight[key] = loop.create_future()
                wanted[ref.node].append(ref)
            futures.append(future)
        # Shielded: a caller that gives up (deadline, disconnect) must not strand the others
        # waiting for the same pages.
        tmem = self._backend.tmem
        await asyncio.shield(
            asyncio.gather(
                *(self._fetch_from(tmem, node, batch, free) for node, batch in wanted.items())
            )
        )
        return [await future for future in futures]

    async def _fetch_from(
        self, asked: Tmem | None, node: int, refs: list[RemoteRef], free: bool
    ) -> None:
        """Fetch from one peer and settle each page against the tree it was asked for: if the
        backend was reloaded meanwhile, the refs mean nothing in the new one (a miss)."""
        link = self._links.get(node)
        answers: list[tuple[PackedPage, int] | None] | None = None
        try:
            if link is not None:
                try:
                    answers = await link.get(refs, free)
                    self.counters["remote_gets_sent"] += 1
                except RamsterError as error:
                    log.warning("remote get from node %d failed: %s", node, error.message)
            tmem = self._backend.tmem
            for n, ref in enumerate(refs):
                future = self._inflight.pop((ref.obj_id, ref.index, ref.version, free))
                if tmem is None or tmem is not asked or answers is None:
                    # Reloaded meanwhile, or the holder is unreachable: a miss, and the handle
                    # stays for a later get.
                    future.set_result(None)
                else:
                    answer = answers[n]
                    future.set_result(localify(tmem, ref, answer, free and answer is not None))
        finally:
            # Whatever was raised, no caller may wait for these pages for ever.
            for ref in refs:
                stuck = self._inflight.pop((ref.obj_id, ref.index, ref.version, free), None)
                if stuck is not None and not stuck.done():
                    stuck.set_result(None)

    # -- switching ramster off ---------------------------------------------------------------

    async def bring_home(self) -> int:
        """Repatriate every remote persistent page and drop remote ephemeral ones; raise
        FailedPrecondition, leaving the rest remote, if the store has no room for them."""
        tmem = self._backend.tmem
        if tmem is None:
            return 0
        async with self._shipping:
            return await self._bring_home(tmem)

    async def _bring_home(self, tmem: Tmem) -> int:
        home = 0
        refs = remote_refs(tmem, persistent=True)
        for node in sorted({ref.node for ref in refs}):
            batch = [ref for ref in refs if ref.node == node]
            for start in range(0, len(batch), self.config.batch_pages):
                chunk = batch[start : start + self.config.batch_pages]
                home += await self._repatriate(tmem, node, chunk)
        await self._send_flushes(tmem)  # the copies of the pages now home
        left = len(remote_refs(tmem, persistent=True))
        if left:
            raise FailedPrecondition(
                f"{left} persistent pages could not come home (store full or holder "
                "unreachable): ramster stays on"
            )
        for ref in remote_refs(tmem, persistent=False):
            drop_remote(tmem, ref)
        await self._send_flushes(tmem)
        return home

    async def _repatriate(self, tmem: Tmem, node: int, refs: list[RemoteRef]) -> int:
        link = self._links.get(node)
        if link is None:
            return 0
        try:
            answers = await link.get(refs, free=False)
        except RamsterError as error:
            log.warning("node %d unreachable while bringing pages home: %s", node, error.message)
            return 0
        home = 0
        done = []
        for ref, answer in zip(refs, answers, strict=True):
            if answer is not None and answer[1] == ref.version and repatriate(tmem, ref, answer[0]):
                home += 1
                done.append(RemoteFlush(node, ref.pool_uid, ref.oid, ref.index, ref.version))
        tmem.remote_flushes.extend(done)  # sent, counted and logged by the next _send_flushes
        return home

    # -- internals ---------------------------------------------------------------------------

    def _skip(self) -> frozenset[int]:
        now = time.monotonic()
        return frozenset(n for n, until in self._failed_until.items() if until > now)

    def _charge_target(
        self, target: int, shipments: Sequence[Shipment], stored: Sequence[bool]
    ) -> None:
        """Take what the peer just stored off its free bytes in this node's view: published free
        bytes lag by a second, and a burst must not pile onto one peer meanwhile."""
        info = self.members.get(target)
        if info is not None:
            taken = sum(len(s.page.payload) for s, ok in zip(shipments, stored, strict=True) if ok)
            self.members[target] = replace(info, free_bytes=max(0, info.free_bytes - taken))

    def _mark_failed(self, node: int, error: RamsterError | None) -> None:
        self._failed_until[node] = time.monotonic() + self.config.failure_backoff
        if error is not None:
            log.warning("shipping to node %d failed: %s", node, error.message)
