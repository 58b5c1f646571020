"""`RemoteLayer`: the async half of RAMster on one node, composed of one part per concern.

- `Peers` (`peers.py`): links to the live members, the view, introduction, failure backoff,
  placement, storing batches; letting go of nodes gone for good.
- `Flushes` (`flushes.py`): sending the flushes the tree queued for copies on peers.
- `Remotify` (`remotify.py`): one shipping round under pressure.
- `Replication` (`replication.py`): the second copy on put, and repair rounds.
- `Fetcher` (`fetch.py`): remote gets, coalesced, failing over to the other copy.
- `Homecoming` (`homecoming.py`): recovery at start; bringing pages home when `ramster` goes off.

This module runs the two background loops (a shipping round every `interval` or when woken, a
repair round when woken or while pages are at risk, backing off) and wakes them when the view,
the params or the pressure change. Durability (docs/design.md §6): a persistent put is acknowledged
once a peer holds its second copy; a peer is placed on only once it knows this epoch. Counters keep
the kernel's names. Not here: the links themselves (`ramster.remote.peer.Peer`, made by the
factory the node hands in), the pure rules (`ramster.remote.policy`, `ramster.tmem`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence

from nodemanager.model import MemberInfo
from ramster.backend import Backend
from ramster.remote.fetch import Fetched, Fetcher
from ramster.remote.flushes import Flushes
from ramster.remote.handles import OriginTmem, RemoteRef, Shipment
from ramster.remote.homecoming import Homecoming
from ramster.remote.peer import LinkFactory
from ramster.remote.peers import Peers
from ramster.remote.policy import RemotifyConfig
from ramster.remote.remotify import Remotify
from ramster.remote.replication import REPAIR_RETRY, Replication
from ramster.tmem import Oid, PutOutcome

log = logging.getLogger("ramster.remote")

Round = Callable[[bool], Awaitable[float]]
"""One turn of a background loop, told whether it was woken (else its wait ran out); returns
the seconds to wait for the next turn unless woken."""


class RemoteLayer:
    """Links to peers, the shipping and repair loops, and remote gets for node `me` of epoch
    `epoch`, over links made by `link_factory`."""

    def __init__(
        self,
        backend: Backend,
        me: Callable[[], int],
        epoch: str,
        config: RemotifyConfig,
        link_factory: LinkFactory,
    ) -> None:
        self._backend = backend
        self.config = config
        self.peers = Peers(backend, me, epoch, config, link_factory)
        self.flushes = Flushes(self.peers)
        shipping = asyncio.Lock()  # a shipping round and bring_home exclude each other
        self.remotify = Remotify(backend, self.peers, self.flushes, config, shipping)
        self.replication = Replication(backend, self.peers, self.flushes, config)
        self.fetcher = Fetcher(backend, self.peers)
        self.homecoming = Homecoming(backend, self.peers, self.flushes, config, shipping)
        self._wake = asyncio.Event()
        self._repair_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def __repr__(self) -> str:
        return f"<RemoteLayer node {self.me} peers={sorted(self.peers.links)}>"

    @property
    def members(self) -> dict[int, MemberInfo]:
        return self.peers.members

    @property
    def recovered(self) -> bool:
        """Recovery is done (it waits for a loaded backend)."""
        return self.peers.recovered

    @property
    def counters(self) -> dict[str, int]:
        """The counters of every part."""
        parts = (
            self.flushes,
            self.fetcher,
            self.remotify,
            self.replication,
            self.homecoming,
            self.peers,
        )
        return {name: value for part in parts for name, value in part.counters.items()}

    @property
    def me(self) -> int:
        """This node's number: 0 until the cluster has given it one (`ClusterAgent.number`)."""
        return self.peers.me

    def all_counters(self) -> dict[str, int]:
        """The layer's counters, with the pages at risk now, whether what peers hold for this
        node is changing (`remotify_active`), and the corrupt copies every link turned away."""
        return {
            **self.counters,
            "pers_pages_at_risk": self.replication.pages_at_risk(),
            "remotify_active": int(self.remotify.active),
            "remote_pages_corrupt": self.peers.corrupt_pages(),
            "remote_target_down": self.peers.target_down or 0,
        }

    # -- the view ----------------------------------------------------------------------------

    async def set_members(self, members: dict[int, MemberInfo]) -> None:
        """Follow the cluster view (`Peers.set_members`); new peers are introduced by the
        shipping loop once recovery is done."""
        self.remotify.reconsider()
        holders_changed = await self.peers.set_members(members)
        self._wake.set()  # the shipping loop introduces new peers (never inline: a peer that
        # does not answer must not hold up the membership callbacks)
        if holders_changed:
            self._repair_wake.set()

    def forget_gone(
        self, now: float, grace: float, trusted: bool, forgotten: Collection[int] = ()
    ) -> list[int]:
        """Let go of the nodes gone for good (`Peers.forget_gone`); returns them."""
        return self.peers.forget_gone(now, grace, trusted, forgotten)

    # -- the work, run by the loops or asked for -----------------------------------------------

    async def recover(self, earlier: Sequence[str] | None, timeout: float) -> int:
        """Take back this node's pages from its `earlier` epochs (`Homecoming.recover`, waiting
        `timeout` s for each peer's listing); return how many. Waits for zcache on: with no
        backend, nothing is done (and 0 returned)."""
        tmem = self._backend.tmem
        if tmem is None:  # no backend to restore into: recovery waits for zcache on
            return 0
        restored = await self.homecoming.recover(tmem, earlier, timeout)
        self._repair_wake.set()
        self._wake.set()
        return restored

    async def tick(self) -> int:
        """One shipping round (`Remotify.tick`); pages shipped."""
        return await self.remotify.tick()

    async def repair(self) -> int:
        """One repair round (`Replication.repair`); copies made."""
        return await self.replication.repair()

    def copies_of_puts(
        self,
        tmem: OriginTmem,
        client: str,
        pool_id: int,
        keys: Sequence[tuple[Oid, int]],
        outcomes: Sequence[PutOutcome],
    ) -> list[Shipment]:
        """The other copies a put that just stored must make (`Replication.copies_of_puts`)."""
        return self.replication.copies_of_puts(tmem, client, pool_id, keys, outcomes)

    async def copy(
        self, tmem: OriginTmem, shipments: list[Shipment], take_back: bool
    ) -> set[tuple[Oid, int]]:
        """Make those copies (`Replication.copy`): the keys of the pages no peer took, taken
        back and to be refused if `take_back`, else still held with one copy."""
        return await self.replication.copy(tmem, shipments, take_back)

    async def fetch(self, refs: Sequence[RemoteRef], keep: bool) -> list[Fetched]:
        """The pages of `refs`, from their holders (`Fetcher.fetch`)."""
        return await self.fetcher.fetch(refs, keep)

    async def bring_home(self) -> int:
        """Every remote persistent page home (`Homecoming.bring_home`); pages brought home."""
        return await self.homecoming.bring_home()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._remotify_loop(), name="ramster-remotify"),
            asyncio.create_task(self._repair_loop(), name="ramster-repair"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.peers.close()

    def evacuate(self) -> None:
        """This node is leaving: ship every persistent page of its own to peers (two copies
        elsewhere), whatever the watermarks and the remotify params."""
        self.remotify.evacuating = True
        self.remotify.reconsider()
        self._wake.set()

    def stop_evacuating(self) -> None:
        """This node stays after all (undrained): its own pages ship by the watermarks and the
        remotify params again; those already shipped stay where they are."""
        self.remotify.evacuating = False

    def wake(self) -> None:
        """The module params changed: act on them now."""
        self.peers.check_target()
        self._wake.set()
        self._repair_wake.set()
        self.remotify.reconsider()

    def note_pressure(self) -> None:
        """Called after puts: start shipping now if the store is past its high watermark."""
        if self.remotify.under_pressure():
            self._wake.set()

    async def _remotify_loop(self) -> None:
        await _loop("remotify", self._wake, self._remotify_round, self.config.interval)

    async def _repair_loop(self) -> None:
        await _loop("repair", self._repair_wake, self.replication.round, REPAIR_RETRY)

    async def _remotify_round(self, woken: bool) -> float:
        await self.remotify.tick()
        return self.config.interval


async def _loop(name: str, wake: asyncio.Event, round_: Round, pause: float) -> None:
    """Run `round_` whenever `wake` is set or `pause` seconds pass (as the last round asked),
    for ever; a round that raises is logged, and the loop goes on."""
    while True:
        await _woken(wake, pause)
        woken = wake.is_set()
        wake.clear()
        try:
            pause = await round_(woken)
        except Exception:
            log.exception("%s round failed", name)


async def _woken(event: asyncio.Event, timeout: float) -> None:
    """Wait until `event` is set or `timeout` seconds pass. Not `wait_for` in a loop that
    suppresses TimeoutError: on Python 3.11 a cancel that lands as the timeout fires comes out
    as TimeoutError, and the loop would never stop."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()
