"""`RemoteLayer`: the async half of RAMster on one node.

It keeps a `PeerLink` per live member, and in the background, every `interval` or when woken,
first sends the queued flushes of remote copies, then — above the high watermark, with the
`ramster` param on — ships the oldest pages in batches to peers until the store is below the low
watermark. It serves gets of remote pages (one request per page however many callers wait for
it, failing over to the other copy) and, when `ramster` is switched off, brings persistent pages
home before the switch is reported.

Durability (DESIGN §6): a persistent put is acknowledged once a peer holds its second copy
(`replicate`); a peer that leaves the view has its copies written off at once, and a repair loop
rebuilds the missing copies at `repair_rate` (and moves copies off draining peers). A peer is
placed on only once it knows this epoch: at start `recover` takes this node's pages back from the
peers in view; any other peer is told to forget what it held for this node first.
Counters keep the kernel's names.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from asyncio import FIRST_COMPLETED
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace

from nodemanager.model import MemberInfo
from ramster.backend import Backend
from ramster.errors import FailedPrecondition, RamsterError
from ramster.remote import policy
from ramster.remote.absence import AbsenceClock
from ramster.remote.links import PeerLink
from ramster.remote.policy import (
    RemotifyConfig,
    brings_home,
    bytes_to_ship,
    classes_to_ship,
    copies_wanted,
    placement,
    target_down,
)
from ramster.tmem import Hit, Oid, PutOutcome, Tmem
from ramster.tmem.copies import (
    HERE,
    PageCopies,
    ShortfallScan,
    copies_of_puts,
    lost_copy,
    read_here,
    remote_holders,
    settle,
    short_of_copies,
    unput,
    write_off,
)
from ramster.tmem.recovery import forget_origin, held_origins, own_records, restore
from ramster.tmem.remote import RemoteFlush, RemoteRef, Shipment, Unanswered
from ramster.tmem.shipping import (
    complete_shipments,
    drain_flushes,
    drop_remote,
    localify,
    remote_refs,
    repatriate,
    return_shipments,
    take_shipments,
)
from ramster.tmem.store import PackedPage

log = logging.getLogger("ramster.remote")

LinkFactory = Callable[[int, str, int, str, float], PeerLink]
"""Builds the link to a peer: (number, address, this node's number, epoch, timeout)."""

FetchKey = tuple[int, int, int]
"""(obj_id, index, version): concurrent gets of one remote page share one request."""

FoundPage = tuple[PackedPage, int]
"""A page a holder answered, with the version it holds."""

Fetched = Hit | Unanswered | None
"""What a get of a remote page answers (`RemoteLayer.fetch`)."""


class RemoteLayer:
    """Links to peers, the shipping loop, and remote gets for node `me` of epoch `epoch`."""

    def __init__(
        self,
        backend: Backend,
        me: Callable[[], int],
        epoch: str,
        config: RemotifyConfig,
        link_factory: LinkFactory = PeerLink,
    ) -> None:
        self._backend = backend
        self._link_factory = link_factory
        self._me = me
        self._epoch = epoch
        self.config = config
        self.members: dict[int, MemberInfo] = {}
        self._links: dict[int, PeerLink] = {}
        self._failed_until: dict[int, float] = {}
        self._inflight: dict[FetchKey, asyncio.Future[Fetched]] = {}
        self._wake = asyncio.Event()
        self._corrupt_of_gone = 0
        self._shipping = asyncio.Lock()  # a shipping round and bring_home exclude each other
        self._tasks: list[asyncio.Task[None]] = []
        self._repair_wake = asyncio.Event()
        self._holders: frozenset[tuple[int, str, bool]] = frozenset()  # who holds pages
        self._introduced: set[int] = set()  # peers that know this epoch (recovered or forgot)
        self._unrecovered: set[int] = set()  # peers recovery could not read: never told to forget
        self._introducing = asyncio.Lock()
        self._epochs: dict[int, str] = {}  # the last epoch seen of every peer
        self._orphans: dict[int, list[RemoteFlush]] = {}  # written-off copies, by holder
        self._recovered = False
        self._unshippable: set[bool] = set()  # classes with no page any peer may take now
        self._evacuating = False
        self._target_down: int | None = None  # the remote_target last found down, logged once
        self._absence = AbsenceClock()  # nodes out of the view this node keeps something for
        self._draining_at_risk = 0  # pages the last repair pass left with a draining copy
        self.counters = dict.fromkeys(
            (
                "remote_pages_flushed",
                "remote_page_flushes_failed",
                "remote_objects_flushed",
                "remote_pools_flushed",
                "remote_gets_sent",
                "remote_gets_failed_over",
                "remotify_batches",
                "remotify_busy_microseconds",
                "pers_copies_made",
                "pers_pages_recovered",
                "repair_rounds",
                "peers_written_off",
                "origins_forgotten",
                "foreign_pages_forgotten",
                "remote_flushes_forgotten",
            ),
            0,
        )

    def __repr__(self) -> str:
        return f"<RemoteLayer node {self.me} peers={sorted(self._links)}>"

    @property
    def me(self) -> int:
        """This node's number: 0 until the cluster has given it one (`ClusterAgent.number`)."""
        return self._me()

    def all_counters(self) -> dict[str, int]:
        """The layer's counters, with the pages at risk now, whether what peers hold for this
        node is changing (`remotify_active`), and the corrupt copies every link turned away."""
        corrupt = sum(link.corrupt_pages for link in self._links.values())
        tmem = self._backend.tmem
        flushing = tmem is not None and bool(tmem.remote_flushes)
        return {
            **self.counters,
            "pers_pages_at_risk": self.pages_at_risk(),
            # A shipping round (or bring_home) runs, or flushes wait for the next one.
            "remotify_active": int(self._shipping.locked() or flushing),
            "remote_pages_corrupt": corrupt + self._corrupt_of_gone,
            "remote_target_down": self._target_down or 0,
        }

    def check_target(self) -> None:
        """Note (and log once) whether the `remote_target` param names a node that cannot take
        pages now: placement is automatic until it can."""
        target = self._backend.params.remote_target
        down = target if target_down(self.members, self.me, target) else None
        if down == self._target_down:
            return
        if down is not None:
            log.warning(
                "remote_target node %d is not up (or is this node): pages go to peers by free "
                "bytes until it is",
                down,
            )
        elif self._target_down == target:
            log.info("remote_target node %d is up: pages go to it again", target)
        self._target_down = down

    # -- membership --------------------------------------------------------------------------

    async def set_members(self, members: dict[int, MemberInfo]) -> None:
        """Follow the cluster view: open links to new peers, close links to gone ones (writing
        off the copies they held), and introduce new peers once recovery is done."""
        tmem = self._backend.tmem
        for number in (self.members.keys() | self._epochs.keys()) - {self.me}:
            info = members.get(number)
            known = self._epochs.get(number)
            restarted = info is not None and known is not None and info.epoch != known
            if info is not None and not restarted:
                continue
            if number in self.members or restarted:
                self._write_off(tmem, number, restarted)
            if restarted:
                del self._epochs[number]
        self._epochs.update((n, info.epoch) for n, info in members.items() if n != self.me)
        self.members = dict(members)
        self.check_target()
        self._unshippable.clear()
        for number, info in members.items():
            link = self._links.get(number)
            if number == self.me or (link is not None and link.address == info.address):
                if link is not None:
                    link.holder_epoch = info.epoch
                continue
            if link is not None:
                await link.close()
            link = self._links[number] = self._link_factory(
                number, info.address, self.me, self._epoch, self.config.peer_timeout
            )
            link.holder_epoch = info.epoch
        for number in [n for n in self._links if n not in members]:
            gone = self._links.pop(number)
            self._corrupt_of_gone += gone.corrupt_pages
            await gone.close()
        self._wake.set()  # the shipping loop introduces new peers (never inline: a peer that
        # does not answer must not hold up the membership callbacks)
        # Published free bytes change every second; only who holds pages matters to repair.
        holders = frozenset((n, i.epoch, policy.holding(i)) for n, i in members.items())
        if holders != self._holders:
            self._holders = holders
            self._repair_wake.set()

    def forget_gone(
        self, now: float, grace: float, trusted: bool, forgotten: Collection[int] = ()
    ) -> list[int]:
        """Let go of the nodes out of the view for `grace` seconds as of `now` (monotonic), and
        of those an operator `forgotten` at once: drop the pages held for them and the flushes
        queued for them. Never a node in the view; no clock runs while the view is not
        `trusted` (etcd out of reach). Returns the nodes let go of."""
        if not trusted:
            self._absence.reset()
            return []
        tmem = self._backend.tmem
        kept = set(self._orphans)
        if tmem is not None:
            kept |= held_origins(tmem) | remote_holders(tmem)
        live = set(self.members) | {self.me}
        gone = set(self._absence.expired(now, grace, live, kept))
        gone.update(n for n in forgotten if n in kept and n not in live)
        for number in sorted(gone):
            why = (
                "was forgotten by an operator"
                if number in forgotten
                else f"has been out of the cluster for origin_grace ({grace:g} s)"
            )
            self._forget_peer(tmem, number, why)
        return sorted(gone)

    def _forget_peer(self, tmem: Tmem | None, number: int, why: str) -> None:
        pages = lost = 0
        if tmem is not None:
            pages = forget_origin(tmem, number, "")
            # Its copies are gone for good: a page only it held is lost (a miss from now on,
            # not UNAVAILABLE for ever), counted in remote_pers_pages_lost.
            lost = write_off(tmem, number, restarted=True)[0].lost
        flushes = len(self._orphans.pop(number, []))
        self._absence.drop(number)
        self._epochs.pop(number, None)
        self._unrecovered.discard(number)
        self.counters["origins_forgotten"] += 1
        self.counters["foreign_pages_forgotten"] += pages
        self.counters["remote_flushes_forgotten"] += flushes
        log.warning(
            "node %d %s: dropped the %d pages held for it and the %d flushes queued for it; "
            "%d persistent pages only it held are lost",
            number, why, pages, flushes, lost,
        )  # fmt: skip

    def _unsure(self, node: int, flushes: Sequence[RemoteFlush]) -> None:
        """A call to `node` failed, and may or may not have changed what it holds: keep the
        flushes that settle it, and place nothing there before they are sent."""
        self._orphans.setdefault(node, []).extend(flushes)
        self._introduced.discard(node)

    def _write_off(self, tmem: Tmem | None, number: int, restarted: bool) -> None:
        """Stop counting on peer `number`'s copies until it is introduced again."""
        self._introduced.discard(number)
        self.counters["peers_written_off"] += 1
        if restarted:
            self._orphans.pop(number, None)
        if tmem is None:
            return
        off, orphans = write_off(tmem, number, restarted)
        self._orphans.setdefault(number, []).extend(orphans)
        how = "restarted" if restarted else "left"
        log.warning("node %d %s: its copies are written off (%s)", number, how, off)

    async def _introduce(self) -> None:
        """Before a peer is placed on (again): flush the copies it held that were written off
        while it was out of the view, and have it forget this node's earlier epochs."""
        async with self._introducing:  # one at a time: orphans go before any placement
            for number, link in list(self._links.items()):
                if number in self._introduced or number in self._failing():
                    continue
                orphans = self._orphans.pop(number, [])
                try:
                    if orphans:
                        await link.flush(orphans)
                    # A peer recovery could not read may hold this node's only copies of
                    # pages: its earlier epochs are left alone.
                    dropped = number not in self._unrecovered and await link.forget()
                except RamsterError as error:
                    self._orphans.setdefault(number, []).extend(orphans)
                    self._mark_failed(number, error)
                    log.warning("node %d could not be introduced: %s", number, error.message)
                    continue
                self._introduced.add(number)
                self._log_introduced(number, dropped, len(orphans))

    @staticmethod
    def _log_introduced(number: int, dropped: bool, orphans: int) -> None:
        if dropped or orphans:
            log.info(
                "node %d flushed %d written-off copies%s",
                number,
                orphans,
                " and dropped pages of earlier epochs" if dropped else "",
            )

    # -- recovery ----------------------------------------------------------------------------

    async def recover(self) -> int:
        """Take back, from the peers in view, the persistent pages this node's earlier epochs
        stored (the latest epoch any peer holds); return how many pages. Until this is done no
        peer is placed on."""
        tmem = self._backend.tmem
        if tmem is None:  # no backend to restore into: recovery waits for zcache on
            return 0
        restored = await self._recover(tmem)
        self._recovered = True
        await self._introduce()
        self._repair_wake.set()
        self._wake.set()
        return restored

    async def _recover(self, tmem: Tmem) -> int:
        timeout = self.config.recover_timeout
        deadline = time.monotonic() + timeout
        surveys: dict[int, list[str]] = {}
        pending = list(self._links)
        while pending:  # a peer in view that fails is asked again, until the deadline
            answers = await asyncio.gather(
                *(self._links[n].recover("", timeout) for n in pending), return_exceptions=True
            )
            failed = []
            for number, answer in zip(pending, answers, strict=True):
                if isinstance(answer, BaseException):
                    failed.append(number)
                else:
                    surveys[number] = answer[0]
            pending = [n for n in failed if n in self._links]
            if pending and time.monotonic() > deadline:
                log.warning("nodes %s did not answer the recovery survey", pending)
                self._unrecovered.update(pending)
                break
            if pending:
                await asyncio.sleep(0.5)
        older = {e for epochs in surveys.values() for e in epochs if e != self._epoch}
        keep = max(older) if older else ""
        restored = 0
        for number, epochs in surveys.items():
            link = self._links.get(number)
            if link is None:
                continue
            if keep and epochs:
                try:
                    _, owners, keys = await link.recover(keep, timeout)
                except RamsterError as error:
                    log.warning("node %d: recovery failed: %s", number, error.message)
                    self._unrecovered.add(number)
                    continue
                restored += restore(tmem, number, owners, keys)
            self._introduced.add(number)
        await self._send_flushes(tmem)
        self.counters["pers_pages_recovered"] += restored
        if restored:
            log.info("recovered %d persistent pages of epoch %s from peers", restored, keep)
        return restored

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name="ramster-remotify"),
            asyncio.create_task(self._repair_forever(), name="ramster-repair"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for link in self._links.values():
            await link.close()
        self._links.clear()

    def evacuate(self) -> None:
        """This node is leaving: ship every persistent page of its own to peers (two copies
        elsewhere), whatever the watermarks and the remotify params."""
        self._evacuating = True
        self._unshippable.clear()
        self._wake.set()

    def stop_evacuating(self) -> None:
        """This node stays after all (undrained): its own pages ship by the watermarks and the
        remotify params again; those already shipped stay where they are."""
        self._evacuating = False

    @property
    def recovered(self) -> bool:
        """Recovery is done (it waits for a loaded backend)."""
        return self._recovered

    def wake(self) -> None:
        """The module params changed: act on them now."""
        self.check_target()
        self._wake.set()
        self._repair_wake.set()
        self._unshippable.clear()

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
            await _woken(self._wake, self.config.interval)
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
        if self._recovered and not self._introduced.issuperset(self._links):
            await self._introduce()
        config = store.config
        evacuating = self._evacuating and self._backend.ramster
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
                    order = self._placement(self._backend.params.remote_target)
                    if not order:
                        break
                    shipments = take_shipments(
                        tmem, persistent, self.config.batch_pages, self.config.batch_bytes
                    )
                    if not shipments:
                        break
                    single = persistent and self.copies_wanted() > 1
                    batches = _by_target(shipments, order, single)
                    if None in batches:  # every allowed peer holds their other copy already
                        return_shipments(tmem, batches.pop(None))
                    if not batches:
                        self._unshippable.add(persistent)
                        break
                    # Flushes queued before this batch go first (they carry versions, so even
                    # a late one cannot remove a newer copy, but early is cheaper).
                    await self._send_flushes(tmem)
                    for target, batch in batches.items():
                        assert target is not None
                        task = asyncio.create_task(self._ship(tmem, target, batch))
                        in_flight[task] = sum(len(s.page.payload) for s in batch)
                    while len(in_flight) >= self.config.in_flight:
                        done, _ = await asyncio.wait(in_flight, return_when=FIRST_COMPLETED)
                        for finished in done:
                            del in_flight[finished]
                            shipped += finished.result()
                if not self._placement(self._backend.params.remote_target):
                    break  # no peer to ship to: the other classes would find none either
        finally:
            if in_flight:
                shipped += sum(await asyncio.gather(*in_flight))
        return shipped

    async def _ship(self, tmem: Tmem, target: int, shipments: list[Shipment]) -> int:
        started = time.perf_counter()
        stored = await self._store_on(tmem, target, shipments)
        self.counters["remotify_batches"] += 1
        shipped = complete_shipments(tmem, target, shipments, stored)
        self.counters["remotify_busy_microseconds"] += int((time.perf_counter() - started) * 1e6)
        return shipped

    async def _store_on(self, tmem: Tmem, target: int, shipments: Sequence[Shipment]) -> list[bool]:
        """Put pages on one peer, with the records of their pools; True for each it took."""
        link = self._links.get(target)
        if link is None:
            return [False] * len(shipments)
        owners = own_records(tmem, {s.pool_uid for s in shipments})
        try:
            stored = await link.put(shipments, owners)
        except RamsterError as error:
            self._mark_failed(target, error)
            # It may have stored them before the answer was lost: flush them before reuse.
            self._unsure(target, [RemoteFlush.of(target, s) for s in shipments])
            return [False] * len(shipments)
        if not any(stored):
            self._mark_failed(target, None)
        self._charge_target(target, shipments, stored)
        return stored

    async def _place(
        self, tmem: Tmem, shipments: Sequence[Shipment], avoid: Sequence[frozenset[int]]
    ) -> list[int | None]:
        """Store each page on one peer not in its `avoid` set, trying the next best peer for the
        pages one refused; the peer that took each page, or None."""
        placed: list[int | None] = [None] * len(shipments)
        tried = [set(nodes) for nodes in avoid]
        pending = list(range(len(shipments)))
        while pending:
            order = self._placement()
            groups: dict[int, list[int]] = defaultdict(list)
            for i in pending:
                target = next((n for n in order if n not in tried[i]), None)
                if target is not None:
                    tried[i].add(target)
                    groups[target].append(i)
            if not groups:
                break
            targets = list(groups)
            results = await asyncio.gather(
                *(self._store_on(tmem, t, [shipments[i] for i in groups[t]]) for t in targets)
            )
            pending = []
            for target, stored in zip(targets, results, strict=True):
                for i, ok in zip(groups[target], stored, strict=True):
                    if ok:
                        placed[i] = target
                    else:
                        pending.append(i)
        return placed

    # -- copies --------------------------------------------------------------------------------

    def copies_wanted(self) -> int:
        return copies_wanted(self.members, self.me, self._backend.params)

    async def replicate(
        self,
        tmem: Tmem,
        client: str,
        pool_id: int,
        keys: Sequence[tuple[Oid, int]],
        outcomes: Sequence[PutOutcome],
    ) -> set[tuple[Oid, int]]:
        """Store the other copy of each persistent page a put just stored on a peer, as
        `persistent_copies` asks. A page no peer took is taken back (`unput`); returns the keys
        of those (they must be refused)."""
        if self.copies_wanted() < 2:  # counted at risk; the peer that joins wakes the repair
            return set()
        shipments = copies_of_puts(tmem, client, pool_id, keys, outcomes)
        copied = await self._copy(tmem, shipments)
        return {(s.oid, s.index) for s, ok in zip(shipments, copied, strict=True) if not ok}

    async def _copy(self, tmem: Tmem, shipments: list[Shipment]) -> list[bool]:
        if not shipments:
            return []
        avoid = [frozenset(() if s.replica is None else (s.replica,)) for s in shipments]
        placed = await self._place(tmem, shipments, avoid)
        if self._backend.tmem is not tmem:  # reloaded meanwhile: those pages are gone
            return [False] * len(shipments)
        draining = self._draining()
        done = []
        for shipment, node in zip(shipments, placed, strict=True):
            copied = node is not None and settle(tmem, shipment, node, draining)
            if copied:
                self.counters["pers_copies_made"] += 1
            else:
                unput(tmem, shipment)  # unless it was put again meanwhile
            done.append(copied)
        return done

    async def _repair_forever(self) -> None:
        pause = REPAIR_RETRY
        while True:
            await _woken(self._repair_wake, pause)
            woken = self._repair_wake.is_set()
            self._repair_wake.clear()
            if not woken and not self.pages_at_risk():
                pause = REPAIR_RETRY
                continue  # a round only when woken, or to retry pages still at risk
            made = 0
            try:
                made = await self.repair()
            except Exception:
                log.exception("repair round failed")
            # Pages at risk and no copy made: no peer can take one now (none in view, or every
            # one full or failing). Scanning again at once would only burn the node's time.
            stuck = not made and self.pages_at_risk() > 0
            pause = min(2 * pause, REPAIR_BACKOFF_MAX) if stuck else REPAIR_RETRY

    async def repair(self) -> int:
        """Rebuild missing copies of persistent pages (and move copies off draining peers), at
        most `repair_rate` pages a second, scanning in steps of `batch_pages` pages that let
        requests in between them; drop ephemeral pages on draining peers. Nothing is scanned
        while no page is at risk or no peer can take a copy, unless a peer drains. Returns
        the copies made."""
        tmem = self._backend.tmem
        if tmem is None or not self._recovered:
            return 0
        await self._introduce()  # peers whose earlier calls failed, before they are used
        draining = self._draining()
        if draining:  # a full scan only while some peer is leaving
            for ref in remote_refs(tmem, persistent=False):
                if ref.node in draining:
                    drop_remote(tmem, ref)
        elif not self.pages_at_risk() or not self._placement():
            await self._send_flushes(tmem)
            return 0
        self.counters["repair_rounds"] += 1
        made, short, draining_at_risk = await self._repair_pass(tmem, draining)
        if self._backend.tmem is tmem:
            self._draining_at_risk = draining_at_risk
        log.info(
            "repair: %d pages were short of copies, %d copies made, %d pages still at risk",
            short,
            made,
            self.pages_at_risk(),
        )
        return made

    def pages_at_risk(self) -> int:
        """Persistent pages with fewer than `persistent_copies` copies on nodes that stay: those
        with too few copies, counted from the tree's tallies (exact at any time, no scan), and,
        while a peer drains, those the last repair pass left with a copy on a draining peer
        (only a scan finds them; a pass visits every page while a peer drains)."""
        tmem = self._backend.tmem
        if tmem is None:
            return 0
        draining = self._draining_at_risk if self._draining() else 0
        return short_of_copies(tmem, self._backend.params.persistent_copies) + draining

    async def _repair_pass(self, tmem: Tmem, draining: frozenset[int]) -> tuple[int, int, int]:
        """Scan every persistent page once, repairing those short of copies `batch_pages` at a
        time; (copies made, pages found short, pages left at risk with a copy on a draining
        peer). The pass ends early when no peer took a copy of a whole batch."""
        wanted, batch = self._backend.params.persistent_copies, self.config.batch_pages
        scan = ShortfallScan(tmem)
        made = short = draining_at_risk = 0
        chunk: list[PageCopies] = []
        while not scan.done:
            chunk += scan.step(wanted, draining, limit=batch - len(chunk))
            if len(chunk) < batch and not (scan.done and chunk):
                await asyncio.sleep(0)  # between steps, requests go first
                continue
            began = time.monotonic()
            copied = await self._repair_chunk(tmem, chunk, draining)
            await self._send_flushes(tmem)
            if self._backend.tmem is not tmem:
                break
            made += sum(copied)
            short += len(chunk)
            draining_at_risk += sum(
                not ok and _kept(c, draining) < wanted <= len(c.holders)
                for c, ok in zip(chunk, copied, strict=True)
            )
            if not any(copied) and any(_kept(c, draining) < wanted for c in chunk):
                break  # no peer took any copy: the rest would fare no better
            pause = len(chunk) / self.config.repair_rate
            chunk = []
            await asyncio.sleep(max(0.0, pause - (time.monotonic() - began)))
        return made, short, draining_at_risk

    async def _repair_chunk(
        self, tmem: Tmem, chunk: Sequence[PageCopies], draining: frozenset[int]
    ) -> list[bool]:
        """Give each page of `chunk` its missing copy; for each, whether it got one."""
        copied = [False] * len(chunk)
        pages = await self._read_copies(tmem, chunk)
        if self._backend.tmem is not tmem:
            return copied
        wanted = self.copies_wanted()
        needy: list[int] = []
        for i, copies in enumerate(chunk):
            if _kept(copies, draining) >= wanted:
                settle(tmem, copies, None, draining)  # only a draining peer's copy to drop
            elif pages[i] is not None:
                needy.append(i)
        shipments = [chunk[i].shipment(_read(pages[i])) for i in needy]
        avoid = [frozenset(n for n in chunk[i].holders if n != HERE) for i in needy]
        placed = await self._place(tmem, shipments, avoid)
        if self._backend.tmem is not tmem:
            return copied
        for i, node in zip(needy, placed, strict=True):
            copies = chunk[i]
            if node is not None:
                copied[i] = settle(tmem, copies, node, draining)
            elif copies.primary is not None:  # no peer will take it: keep it here, if room
                copied[i] = settle(tmem, copies, None, draining, home=pages[i])
        self.counters["pers_copies_made"] += sum(copied)
        return copied

    async def _read_copies(
        self, tmem: Tmem, chunk: Sequence[PageCopies]
    ) -> list[PackedPage | None]:
        """The page of each entry, read here or from a peer holding a copy (None: unreadable)."""
        pages: list[PackedPage | None] = [None] * len(chunk)
        by_source: dict[int, list[int]] = defaultdict(list)
        for i, copies in enumerate(chunk):
            if copies.primary is None:
                pages[i] = read_here(tmem, copies)
                continue
            sources = [n for n in (copies.primary, copies.replica) if n in self._links]
            if sources:
                by_source[sources[0]].append(i)
        for source, indices in by_source.items():
            refs = [chunk[i].ref_on(source) for i in indices]
            try:
                answers = await self._links[source].get(refs)
            except (RamsterError, KeyError) as error:
                log.warning("repair: node %d unreadable: %s", source, error)
                continue
            for i, answer in zip(indices, answers, strict=True):
                if answer is not None and answer[1] == chunk[i].version:
                    pages[i] = answer[0]
        return pages

    # -- flushes -----------------------------------------------------------------------------

    async def _send_flushes(self, tmem: Tmem) -> None:
        flushes = drain_flushes(tmem)
        by_node: dict[int, list[RemoteFlush]] = defaultdict(list)
        for flush in flushes:
            by_node[flush.node].append(flush)
        for node, batch in by_node.items():
            link = self._links.get(node)
            if link is None:  # out of the view: sent if it comes back with its copies
                self._orphans.setdefault(node, []).extend(batch)
                continue
            try:
                await link.flush(batch)
            except RamsterError as error:
                self.counters["remote_page_flushes_failed"] += len(batch)
                log.warning("flushes to node %d failed: %s", node, error.message)
                self._unsure(node, batch)
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

    async def fetch(self, refs: Sequence[RemoteRef], keep: bool) -> list[Fetched]:
        """The pages of `refs`, checked against the tree again once they arrive: a `Hit`, None
        (not there), or `Unanswered` (a persistent page no holder answered for in time). Holders
        are asked to keep their copies: a get that frees takes the page once its answer is on
        its way (`Tmem.take`). With `keep` (a get that does not free), persistent pages read
        come home while the store is below its low watermark."""
        futures = []
        wanted: dict[int, list[RemoteRef]] = defaultdict(list)
        loop = asyncio.get_running_loop()
        for ref in refs:
            key = _fetch_key(ref)
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
                *(self._fetch_from(tmem, node, batch, keep) for node, batch in wanted.items())
            )
        )
        return [await future for future in futures]

    async def _fetch_from(
        self, asked: Tmem | None, node: int, refs: list[RemoteRef], keep: bool
    ) -> None:
        """Fetch from one peer and settle each page against the tree it was asked for: if the
        backend was reloaded meanwhile, the refs mean nothing in the new one (a miss)."""
        try:
            answers = await self._ask(node, refs)
            retry = [
                ref
                for n, ref in enumerate(refs)
                if ref.replica is not None and (answers is None or answers[n] is None)
            ]
            second, unasked = await self._ask_replicas(retry)
            tmem = self._backend.tmem
            for n, ref in enumerate(refs):
                future = self._inflight.pop(_fetch_key(ref))
                if tmem is None or tmem is not asked:  # reloaded meanwhile: a miss
                    future.set_result(None)
                    continue
                primary = answers[n] if answers is not None else None
                future.set_result(
                    self._settle(tmem, ref, primary, answers is not None, second, unasked, keep)
                )
        finally:
            # Whatever was raised, no caller may wait for these pages for ever.
            for ref in refs:
                stuck = self._inflight.pop(_fetch_key(ref), None)
                if stuck is not None and not stuck.done():
                    stuck.set_result(Unanswered((ref.node,)))

    def _settle(
        self,
        tmem: Tmem,
        ref: RemoteRef,
        primary: FoundPage | None,
        asked: bool,
        second: dict[tuple[int, int], FoundPage],
        unasked: set[tuple[int, int]],
        keep: bool,
    ) -> Fetched:
        """What the get of `ref` answers, from the reply of its primary (`asked`: it replied)
        and of its replica if that was asked too. A holder that replied without its copy lost
        it: the other copy is the only one now (`lost_copy`)."""
        replies: dict[int, FoundPage | None] = {ref.node: primary} if asked else {}
        key = (ref.obj_id, ref.index)
        silent = [] if asked else [ref.node]
        if ref.replica is not None and primary is None:  # the replica was asked too
            if key in unasked:
                silent.append(ref.replica)
            else:
                replies[ref.replica] = second.get(key)
        found = [(node, reply) for node, reply in replies.items() if reply is not None]
        if not found and not silent:
            return localify(tmem, ref, None)  # every holder answered without it
        for node, reply in replies.items():
            if reply is None:
                lost_copy(tmem, ref, node)
        if not found:
            return localify(tmem, ref, Unanswered(tuple(silent)))
        source, answer = found[0]
        if source != ref.node:
            self.counters["remote_gets_failed_over"] += 1
        return localify(tmem, ref, answer, keep and self._room_at_home())

    def _room_at_home(self) -> bool:
        """A page read from a peer may come home: the store is below its low watermark."""
        store = self._backend.store
        return store is not None and brings_home(
            store.used_bytes, store.config.memory, store.config.low_watermark
        )

    async def _ask(self, node: int, refs: Sequence[RemoteRef]) -> list[FoundPage | None] | None:
        """The answers of peer `node` for `refs`, or None if it could not be asked. A peer
        whose pages have another copy gets the shorter `read_timeout`."""
        link = self._links.get(node)
        if link is None:
            return None
        failover = any(ref.replica is not None for ref in refs)
        try:
            answers = await link.get(refs, self.config.read_timeout if failover else None)
        except RamsterError as error:
            log.warning("remote get from node %d failed: %s", node, error.message)
            return None
        self.counters["remote_gets_sent"] += 1
        return answers

    async def _ask_replicas(
        self, refs: Sequence[RemoteRef]
    ) -> tuple[dict[tuple[int, int], FoundPage], set[tuple[int, int]]]:
        """The pages the replicas of `refs` hold, by (obj_id, index), and the keys whose
        replica could not be asked."""
        by_node: dict[int, list[RemoteRef]] = defaultdict(list)
        for ref in refs:
            assert ref.replica is not None
            by_node[ref.replica].append(ref)
        found: dict[tuple[int, int], FoundPage] = {}
        unasked: set[tuple[int, int]] = set()
        for node, batch in by_node.items():
            answers = await self._ask(node, batch)
            if answers is None:
                unasked.update((ref.obj_id, ref.index) for ref in batch)
                continue
            for ref, answer in zip(batch, answers, strict=True):
                if answer is not None:
                    found[ref.obj_id, ref.index] = answer
        return found, unasked

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
            answers = await link.get(refs)
        except RamsterError as error:
            log.warning("node %d unreachable while bringing pages home: %s", node, error.message)
            return 0
        # Each page home queues the flush of the copy it replaces: sent by `_send_flushes`.
        return sum(
            answer is not None and answer[1] == ref.version and repatriate(tmem, ref, answer[0])
            for ref, answer in zip(refs, answers, strict=True)
        )

    # -- internals ---------------------------------------------------------------------------

    def _failing(self) -> set[int]:
        """Peers that failed a call within the last `failure_backoff` seconds."""
        now = time.monotonic()
        return {n for n, until in self._failed_until.items() if until > now}

    def _placement(self, target: int | None = None) -> list[int]:
        """Peers to place pages on, best first: known to this epoch, not failing lately."""
        skip = self._failing()
        skip.update(n for n in self.members if n not in self._introduced)
        order = placement(self.members, self.me, frozenset(skip), target)
        return [n for n in order if n in self._links]

    def _draining(self) -> frozenset[int]:
        return frozenset(n for n, info in self.members.items() if info.draining and n != self.me)

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


REPAIR_RETRY = 5.0
"""Seconds between repair rounds while nothing wakes the loop (pages may still be at risk)."""

REPAIR_BACKOFF_MAX = 60.0
"""Seconds at most between repair rounds while rounds make no copy: the wait doubles from
`REPAIR_RETRY` each such round. A peer joining or leaving wakes the loop at once."""


async def _woken(event: asyncio.Event, timeout: float) -> None:
    """Wait until `event` is set or `timeout` seconds pass. Not `wait_for` in a loop that
    suppresses TimeoutError: on Python 3.11 a cancel that lands as the timeout fires comes out
    as TimeoutError, and the loop would never stop."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()


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


def _fetch_key(ref: RemoteRef) -> FetchKey:
    return (ref.obj_id, ref.index, ref.version)


def _kept(copies: PageCopies, draining: frozenset[int]) -> int:
    """How many of the page's copies are on nodes that stay."""
    return sum(node not in draining for node in copies.holders)


def _read(page: PackedPage | None) -> PackedPage:
    assert page is not None, "only pages that were read are placed"
    return page
