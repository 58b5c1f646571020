"""`Peers`: this node's links to its peers and what it knows of them — the view, which peers
know this epoch (introduction), which failed lately (backoff), the order to place pages on them,
and storing a batch of pages on one or on the best that takes it.

A peer that leaves the view has its copies written off at once; one that comes back is
introduced before it is placed on again: the flushes of its written-off copies (orphans, kept
here by holder) go first, on the link that carried what they settle (`ramster.remote.parking`),
and it forgets this node's earlier epochs. Nodes out of the view for `origin_grace` are let go
of. Not here: what is shipped when (`ramster.remote.remotify`), second copies and repair
(`ramster.remote.replication`), the flush queue (`ramster.remote.flushes`), the pure placement
rules (`ramster.remote.policy`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace

from nodemanager.model import MemberInfo
from ramster.backend import Backend
from ramster.errors import RamsterError
from ramster.holder.epochs import forget_origin, held_origins
from ramster.remote import policy
from ramster.remote.absence import AbsenceClock
from ramster.remote.departures import remote_holders, write_off
from ramster.remote.handles import OriginTmem, RemoteFlush, Shipment
from ramster.remote.parking import Parking
from ramster.remote.peer import LinkFactory, Peer
from ramster.remote.policy import RemotifyConfig, copies_wanted, placement, target_down
from ramster.remote.restore import own_records

log = logging.getLogger("ramster.remote")

INTRODUCTION_RETRY = 0.1
"""Seconds before a refused introduction is tried again, doubled for each refusal in a row up to
`failure_backoff`: a peer that has just started refuses an origin it has not seen in its view
yet (UNAVAILABLE, "retry shortly"), and the copies wait for it meanwhile (to the spill, from NBD
writes, after the first refusal of a two-copy export)."""


class Peers:
    """The links and view of node `me` of epoch `epoch`."""

    def __init__(
        self,
        backend: Backend,
        me: Callable[[], int],
        epoch: str,
        config: RemotifyConfig,
        link_factory: LinkFactory,
    ) -> None:
        self._backend = backend
        self._link_factory = link_factory
        self._me = me
        self.epoch = epoch
        self.config = config
        self.members: dict[int, MemberInfo] = {}
        self.links: dict[int, Peer] = {}
        self._failed_until: dict[int, float] = {}
        self._parking = Parking()  # puts in flight; links of peers out of the view
        self._holders: frozenset[tuple[int, str, bool]] = frozenset()  # who holds pages
        self.recovered = False  # recovery is done: peers may be introduced and placed on
        self.introduced: set[int] = set()  # peers that know this epoch (recovered or forgot)
        self.unrecovered: set[int] = set()  # peers recovery could not read: never told to forget
        self._introducing = asyncio.Lock()
        self._refused_introductions: dict[int, int] = {}
        """Introductions refused in a row, by peer: each waits twice as long as the one before."""
        self._epochs: dict[int, str] = {}  # the last epoch seen of every peer
        self._orphans: dict[int, list[RemoteFlush]] = {}  # written-off copies, by holder
        self.target_down: int | None = None  # the remote_target last found down, logged once
        self._absence = AbsenceClock()  # nodes out of the view this node keeps something for
        self.counters = dict.fromkeys(
            (
                "peers_written_off",
                "origins_forgotten",
                "foreign_pages_forgotten",
                "remote_flushes_forgotten",
            ),
            0,
        )

    @property
    def me(self) -> int:
        """This node's number: 0 until the cluster has given it one (`ClusterAgent.number`)."""
        return self._me()

    def __repr__(self) -> str:
        return f"<Peers node {self.me} links={sorted(self.links)} orphans={sorted(self._orphans)}>"

    def corrupt_pages(self) -> int:
        """The corrupt copies every link, open or closed, turned away."""
        open_links = sum(link.corrupt_pages for link in self.links.values())
        return open_links + self._parking.corrupt_pages()

    def check_target(self) -> None:
        """Note (and log once) whether the `remote_target` param names a node that cannot take
        pages now: placement is automatic until it can."""
        target = self._backend.params.remote_target
        down = target if target_down(self.members, self.me, target) else None
        if down == self.target_down:
            return
        if down is not None:
            log.warning(
                "remote_target node %d is not up (or is this node): pages go to peers by free "
                "bytes until it is",
                down,
            )
        elif self.target_down == target:
            log.info("remote_target node %d is up: pages go to it again", target)
        self.target_down = down

    # -- membership --------------------------------------------------------------------------

    async def set_members(self, members: dict[int, MemberInfo]) -> bool:
        """Follow the cluster view: open links to new peers, close links to gone ones (writing
        off the copies they held). True if who holds pages changed (repair has work)."""
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
                await self._parking.drop(number)
        self._epochs.update((n, info.epoch) for n, info in members.items() if n != self.me)
        self.members = dict(members)
        self.check_target()
        for number, info in members.items():
            link = self.links.get(number)
            if number == self.me or (link is not None and link.address == info.address):
                if link is not None:
                    link.holder_epoch = info.epoch
                continue
            if link is not None:
                await link.close()
            link = await self._parking.take(number, info.address)
            if link is None:
                link = self._link_factory(
                    number, info.address, self.me, self.epoch, self.config.peer_timeout
                )
            self.links[number] = link
            link.holder_epoch = info.epoch
        for number in [n for n in self.links if n not in members]:
            owed = bool(self._orphans.get(number))
            await self._parking.park(self.links.pop(number), owed)
        # Published free bytes change every second; only who holds pages matters to repair.
        holders = frozenset((n, i.epoch, policy.holding(i)) for n, i in members.items())
        changed = holders != self._holders
        self._holders = holders
        return changed

    async def close(self) -> None:
        for link in self.links.values():
            await link.close()
        self.links.clear()
        await self._parking.close()

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
            kept |= held_origins(tmem.table) | remote_holders(tmem.table)
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

    def _forget_peer(self, tmem: OriginTmem | None, number: int, why: str) -> None:
        pages = lost = 0
        if tmem is not None:
            pages = forget_origin(tmem.table, number, "")
            # Its copies are gone for good: a page only it held is lost (a miss from now on,
            # not UNAVAILABLE for ever), counted in remote_pers_pages_lost.
            lost = write_off(tmem.table, number, restarted=True)[0].lost
        flushes = len(self._orphans.pop(number, []))
        self._parking.let_go(number)
        self._absence.drop(number)
        self._epochs.pop(number, None)
        self.unrecovered.discard(number)
        self.counters["origins_forgotten"] += 1
        self.counters["foreign_pages_forgotten"] += pages
        self.counters["remote_flushes_forgotten"] += flushes
        log.warning(
            "node %d %s: dropped the %d pages held for it and the %d flushes queued for it; "
            "%d persistent pages only it held are lost",
            number, why, pages, flushes, lost,
        )  # fmt: skip

    def orphan(self, node: int, flushes: Sequence[RemoteFlush]) -> None:
        """Keep `flushes` for `node` until it is introduced (again): they go out first."""
        self._orphans.setdefault(node, []).extend(flushes)

    def unsure(self, node: int, flushes: Sequence[RemoteFlush]) -> None:
        """A call to `node` failed, and may or may not have changed what it holds: keep the
        flushes that settle it, and place nothing there before they are sent."""
        self.orphan(node, flushes)
        self.introduced.discard(node)

    def _write_off(self, tmem: OriginTmem | None, number: int, restarted: bool) -> None:
        """Stop counting on peer `number`'s copies until it is introduced again."""
        self.introduced.discard(number)
        self.counters["peers_written_off"] += 1
        if restarted:
            self._orphans.pop(number, None)
        if tmem is None:
            return
        off, orphans = write_off(tmem.table, number, restarted)
        self.orphan(number, orphans)
        how = "restarted" if restarted else "left"
        log.warning("node %d %s: its copies are written off (%s)", number, how, off)

    async def introduce(self) -> None:
        """Before a peer is placed on (again): flush the copies it held that were written off
        while it was out of the view, and have it forget this node's earlier epochs."""
        async with self._introducing:  # one at a time: orphans go before any placement
            for number, link in list(self.links.items()):
                if number in self.introduced or number in self.failing():
                    continue
                orphans = self._orphans.pop(number, [])
                try:
                    if orphans:
                        await link.flush(orphans)
                    # A peer recovery could not read may hold this node's only copies of
                    # pages: its earlier epochs are left alone.
                    dropped = number not in self.unrecovered and await link.forget()
                except RamsterError as error:
                    self.orphan(number, orphans)
                    refused = self._refused_introductions.get(number, 0) + 1
                    self._refused_introductions[number] = refused
                    backoff = INTRODUCTION_RETRY * 2 ** min(refused - 1, 16)
                    self.mark_failed(number, None, min(backoff, self.config.failure_backoff))
                    log.warning("node %d could not be introduced: %s", number, error.message)
                    continue
                self._refused_introductions.pop(number, None)
                self.introduced.add(number)
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

    # -- placement ---------------------------------------------------------------------------

    def copies_wanted(self) -> int:
        return copies_wanted(self.members, self.me, self._backend.params)

    def failing(self) -> set[int]:
        """Peers that failed a call within the last `failure_backoff` seconds."""
        now = time.monotonic()
        return {n for n, until in self._failed_until.items() if until > now}

    def placement(self, target: int | None = None) -> list[int]:
        """Peers to place pages on, best first: known to this epoch, not failing lately."""
        skip = self.failing()
        skip.update(n for n in self.members if n not in self.introduced)
        order = placement(self.members, self.me, frozenset(skip), target)
        return [n for n in order if n in self.links]

    def draining(self) -> frozenset[int]:
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

    def mark_failed(
        self, node: int, error: RamsterError | None, backoff: float | None = None
    ) -> None:
        """Skip `node` for `backoff` seconds (`failure_backoff` if None); log `error`."""
        wait = self.config.failure_backoff if backoff is None else backoff
        self._failed_until[node] = time.monotonic() + wait
        if error is not None:
            log.warning("shipping to node %d failed: %s", node, error.message)

    async def store_on(
        self, tmem: OriginTmem, target: int, shipments: Sequence[Shipment]
    ) -> list[bool]:
        """Put pages on one peer, with the records of their pools; True for each it took."""
        link = self.links.get(target)
        if link is None:
            return [False] * len(shipments)
        owners = own_records(tmem, {s.pool_uid for s in shipments})
        try:
            stored = await self._parking.put(target, link.put(shipments, owners))
        except RamsterError as error:
            self.mark_failed(target, error)
            # It may have stored them before the answer was lost: flush them before reuse.
            self.unsure(target, [RemoteFlush.of(target, s) for s in shipments])
            return [False] * len(shipments)
        if not any(stored):
            self.mark_failed(target, None)
        self._charge_target(target, shipments, stored)
        return stored

    async def place(
        self, tmem: OriginTmem, shipments: Sequence[Shipment], avoid: Sequence[frozenset[int]]
    ) -> list[int | None]:
        """Store each page on one peer not in its `avoid` set, trying the next best peer for the
        pages one refused; the peer that took each page, or None."""
        placed: list[int | None] = [None] * len(shipments)
        tried = list(avoid)
        pending = list(range(len(shipments)))
        while pending:
            order = self.placement()
            groups: dict[int, list[int]] = defaultdict(list)
            # Pages that tried the same nodes go to the same next one: it is chosen once per
            # set tried (a put's pages all share one, or a few), not once per page.
            following: dict[frozenset[int], tuple[int, frozenset[int]] | None] = {}
            for i in pending:
                nodes = tried[i]
                if nodes not in following:
                    target = next((n for n in order if n not in nodes), None)
                    following[nodes] = None if target is None else (target, nodes | {target})
                step = following[nodes]
                if step is not None:
                    groups[step[0]].append(i)
                    tried[i] = step[1]
            if not groups:
                break
            targets = list(groups)
            results = await asyncio.gather(
                *(self.store_on(tmem, t, [shipments[i] for i in groups[t]]) for t in targets)
            )
            pending = []
            for target, stored in zip(targets, results, strict=True):
                for i, ok in zip(groups[target], stored, strict=True):
                    if ok:
                        placed[i] = target
                    else:
                        pending.append(i)
        return placed
