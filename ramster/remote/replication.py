"""`Replication`: the second copy of every persistent page (docs/design.md §6) — made on put before
the put is acknowledged (or after, for a caller that acknowledges writes itself and waits for
their copies on flush: the NBD volumes' write-back), both by `copy`, and rebuilt by repair rounds
when a peer leaves, restarts or drains.

A repair round scans the tree in steps of `batch_pages` pages at most `repair_rate` pages a
second, reads each page short of copies (here or from a peer holding one) and places its missing
copy; pages with a copy on a draining peer get one elsewhere. The pages at risk are counted from
the tree's tallies, so an idle loop scans nothing, and rounds that make no copy back off. Not
here: the loop itself (`ramster.remote.layer`), the pure rules (`ramster.remote.copies`), placement
(`ramster.remote.peers`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Sequence

from ramster.backend import Backend
from ramster.errors import RamsterError
from ramster.page import PackedPage
from ramster.remote.copies import (
    HERE,
    PageCopies,
    ShortfallScan,
    copied_meanwhile,
    copies_of_puts,
    held_at,
    read_here,
    settle,
    short_of_copies,
    unput,
)
from ramster.remote.flushes import Flushes
from ramster.remote.handles import OriginTmem, Shipment
from ramster.remote.peers import Peers
from ramster.remote.policy import RemotifyConfig
from ramster.remote.shipping import drop_remote, remote_refs
from ramster.tmem import Oid, PutOutcome

log = logging.getLogger("ramster.remote")

REPAIR_RETRY = 5.0
"""Seconds between repair rounds while nothing wakes the loop (pages may still be at risk)."""

REPAIR_BACKOFF_MAX = 60.0
"""Seconds at most between repair rounds while rounds make no copy: the wait doubles from
`REPAIR_RETRY` each such round. A peer joining or leaving wakes the loop at once."""

_NOWHERE: frozenset[int] = frozenset()
"""The nodes a fresh put's copy must avoid: none (it has no other copy yet). One set for every
page, so placement chooses their peer once (`Peers.place`)."""


class Replication:
    """Second copies of the backend's persistent pages on `peers`."""

    def __init__(
        self, backend: Backend, peers: Peers, flushes: Flushes, config: RemotifyConfig
    ) -> None:
        self._backend = backend
        self._peers = peers
        self._flushes = flushes
        self._config = config
        self._draining_at_risk = 0  # pages the last repair pass left with a draining copy
        self._pause = REPAIR_RETRY  # until the next round unless woken
        self.counters = dict.fromkeys(("pers_copies_made", "repair_rounds"), 0)

    def __repr__(self) -> str:
        return f"<Replication at_risk={self.pages_at_risk()}>"

    def copies_of_puts(
        self,
        tmem: OriginTmem,
        client: str,
        pool_id: int,
        keys: Sequence[tuple[Oid, int]],
        outcomes: Sequence[PutOutcome],
    ) -> list[Shipment]:
        """The other copies a put that just stored `keys` must make, read back now (at the
        versions it stored); none while no peer can take one (the pages are counted at risk,
        and the peer that joins wakes repair)."""
        if self._peers.copies_wanted() < 2:
            return []
        return copies_of_puts(tmem.table, client, pool_id, keys, outcomes)

    async def copy(
        self, tmem: OriginTmem, shipments: list[Shipment], take_back: bool
    ) -> set[tuple[Oid, int]]:
        """Store `shipments` (`copies_of_puts`) on peers, in calls of at most `batch_pages`
        pages and `batch_bytes` packed bytes, one after the other (a call past the peer's
        message limit fails whole); the keys of the pages no peer took, under one of two
        contracts:

        - `take_back` (the put waits for its copies): each such page is taken back (`unput`,
          unless it was put again meanwhile) and its key returned, to be refused; after a
          reload meanwhile every key is returned (those pages are gone);
        - else (the put was acknowledged already, and its caller waits for the copies on
          flush): each such page stays here with its one copy, at risk (repair copies it
          later), and only the keys still held at the version shipped are returned, checked
          after the last await, so a caller acting on them before its own next await sees them
          as they are; after a reload meanwhile, none.

        A page a repair round copied while this copy was out counts as copied."""
        if not shipments:
            return set()
        placed: list[int | None] = []
        for chunk in _batches(shipments, self._config.batch_pages, self._config.batch_bytes):
            avoid = [_NOWHERE if s.replica is None else frozenset((s.replica,)) for s in chunk]
            placed += await self._peers.place(tmem, chunk, avoid)
        if self._backend.tmem is not tmem:  # reloaded meanwhile: those pages are gone
            return {(s.oid, s.index) for s in shipments} if take_back else set()
        draining = self._peers.draining()
        uncopied: list[Shipment] = []
        for shipment, node in zip(shipments, placed, strict=True):
            if node is not None and settle(tmem.table, shipment, node, draining):
                self.counters["pers_copies_made"] += 1
            elif not copied_meanwhile(tmem.table, shipment):
                uncopied.append(shipment)
                if take_back:
                    unput(tmem.table, shipment)  # unless it was put again meanwhile
        if not take_back:
            uncopied = [s for s in uncopied if held_at(tmem.table, s)]
        return {(s.oid, s.index) for s in uncopied}

    async def round(self, woken: bool) -> float:
        """One turn of the repair loop (`woken`: something changed, else the wait ran out);
        the seconds to wait for the next one unless woken."""
        if not woken and not self.pages_at_risk():
            self._pause = REPAIR_RETRY
            return self._pause  # a round only when woken, or to retry pages still at risk
        made = 0
        try:
            made = await self.repair()
        except Exception:
            log.exception("repair round failed")
        # Pages at risk and no copy made: no peer can take one now (none in view, or every
        # one full or failing). Scanning again at once would only burn the node's time.
        stuck = not made and self.pages_at_risk() > 0
        self._pause = min(2 * self._pause, REPAIR_BACKOFF_MAX) if stuck else REPAIR_RETRY
        return self._pause

    async def repair(self) -> int:
        """Rebuild missing copies of persistent pages (and move copies off draining peers), at
        most `repair_rate` pages a second, scanning in steps of `batch_pages` pages that let
        requests in between them; drop ephemeral pages on draining peers. Nothing is scanned
        while no page is at risk or no peer can take a copy, unless a peer drains. Returns
        the copies made."""
        tmem = self._backend.tmem
        if tmem is None or not self._peers.recovered:
            return 0
        await self._peers.introduce()  # peers whose earlier calls failed, before they are used
        draining = self._peers.draining()
        if draining:  # a full scan only while some peer is leaving
            for ref in remote_refs(tmem.table, persistent=False):
                if ref.node in draining:
                    drop_remote(tmem.table, ref)
        elif not self.pages_at_risk() or not self._peers.placement():
            await self._flushes.send(tmem)
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
        draining = self._draining_at_risk if self._peers.draining() else 0
        return short_of_copies(tmem.table, self._backend.params.persistent_copies) + draining

    async def _repair_pass(
        self, tmem: OriginTmem, draining: frozenset[int]
    ) -> tuple[int, int, int]:
        """Scan every persistent page once, repairing those short of copies `batch_pages` at a
        time; (copies made, pages found short, pages left at risk with a copy on a draining
        peer). The pass ends early when no peer took a copy of a whole batch."""
        wanted, batch = self._backend.params.persistent_copies, self._config.batch_pages
        scan = ShortfallScan(tmem.table)
        made = short = draining_at_risk = 0
        chunk: list[PageCopies] = []
        while not scan.done:
            chunk += scan.step(wanted, draining, limit=batch - len(chunk))
            if len(chunk) < batch and not (scan.done and chunk):
                await asyncio.sleep(0)  # between steps, requests go first
                continue
            began = time.monotonic()
            copied = await self._repair_chunk(tmem, chunk, draining)
            await self._flushes.send(tmem)
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
            pause = len(chunk) / self._backend.params.repair_rate
            chunk = []
            await asyncio.sleep(max(0.0, pause - (time.monotonic() - began)))
        return made, short, draining_at_risk

    async def _repair_chunk(
        self, tmem: OriginTmem, chunk: Sequence[PageCopies], draining: frozenset[int]
    ) -> list[bool]:
        """Give each page of `chunk` its missing copy; for each, whether it got one."""
        copied = [False] * len(chunk)
        pages = await self._read_copies(tmem, chunk)
        if self._backend.tmem is not tmem:
            return copied
        wanted = self._peers.copies_wanted()
        needy: list[int] = []
        for i, copies in enumerate(chunk):
            if _kept(copies, draining) >= wanted:
                settle(tmem.table, copies, None, draining)  # only a draining peer's copy to drop
            elif pages[i] is not None:
                needy.append(i)
        shipments = [chunk[i].shipment(_read(pages[i])) for i in needy]
        avoid = [frozenset(n for n in chunk[i].holders if n != HERE) for i in needy]
        placed = await self._peers.place(tmem, shipments, avoid)
        if self._backend.tmem is not tmem:
            return copied
        for i, node in zip(needy, placed, strict=True):
            copies = chunk[i]
            if node is not None:
                copied[i] = settle(tmem.table, copies, node, draining)
            elif copies.primary is not None:  # no peer will take it: keep it here, if room
                copied[i] = settle(tmem.table, copies, None, draining, home=pages[i])
        self.counters["pers_copies_made"] += sum(copied)
        return copied

    async def _read_copies(
        self, tmem: OriginTmem, chunk: Sequence[PageCopies]
    ) -> list[PackedPage | None]:
        """The page of each entry, read here or from a peer holding a copy (None: unreadable)."""
        pages: list[PackedPage | None] = [None] * len(chunk)
        by_source: dict[int, list[int]] = defaultdict(list)
        links = self._peers.links
        for i, copies in enumerate(chunk):
            if copies.primary is None:
                pages[i] = read_here(tmem.table, copies)
                continue
            sources = [n for n in (copies.primary, copies.replica) if n in links]
            if sources:
                by_source[sources[0]].append(i)
        for source, indices in by_source.items():
            refs = [chunk[i].ref_on(source) for i in indices]
            try:
                answers = await links[source].get(refs)
            except (RamsterError, KeyError) as error:
                log.warning("repair: node %d unreadable: %s", source, error)
                continue
            for i, answer in zip(indices, answers, strict=True):
                if answer is not None and answer[1] == chunk[i].version:
                    pages[i] = answer[0]
        return pages


def _batches(shipments: list[Shipment], pages: int, size: int) -> list[list[Shipment]]:
    """`shipments` in order, cut into runs of at most `pages` pages and `size` packed bytes
    (a page alone larger than `size` is a run of its own)."""
    batches: list[list[Shipment]] = []
    batch: list[Shipment] = []
    held = 0
    for shipment in shipments:
        length = len(shipment.page.payload)
        if batch and (len(batch) == pages or held + length > size):
            batches.append(batch)
            batch, held = [], 0
        batch.append(shipment)
        held += length
    return [*batches, batch] if batch else batches


def _kept(copies: PageCopies, draining: frozenset[int]) -> int:
    """How many of the page's copies are on nodes that stay."""
    return sum(node not in draining for node in copies.holders)


def _read(page: PackedPage | None) -> PackedPage:
    assert page is not None, "only pages that were read are placed"
    return page
