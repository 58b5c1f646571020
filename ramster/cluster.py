"""`ClusterAgent`: one node's place in the cluster — membership, peers, params, and switches.

It joins through a `Membership` (etcd, or a static peer list), takes back the pages its earlier
epoch left on peers, publishes the node's free bytes every `publish_interval`, hands each new
view to the remote layer, and applies module params, whether set on this node
(`Admin.SetParam`) or cluster-wide (etcd ``params/``). Switching `ramster` off brings the
persistent pages home first and is reported only once that is done. Foreign pages stay until
their origin flushes them, takes them back after a restart (`Peer/Recover`) or has them
forgotten (`Peer/Forget`). `drain` leaves gracefully: published as draining, the node waits for
its peers to move their copies off it; `undrain` takes that back.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from nodemanager.model import MemberInfo, Membership
from ramster.backend import Backend
from ramster.errors import RamsterError
from ramster.params import parse_switch
from ramster.remote.layer import RemoteLayer
from ramster.remote.policy import RemotifyConfig, holding
from ramster.state import StateFeed
from ramster.tmem.foreign import foreign_pages, origin_client

log = logging.getLogger("ramster.cluster")


class ClusterAgent:
    """Membership, remote layer and module params of one node."""

    def __init__(
        self,
        backend: Backend,
        feed: StateFeed,
        membership: Membership,
        me: MemberInfo,
        remotify: RemotifyConfig,
        publish_interval: float = 1.0,
    ) -> None:
        self._backend = backend
        self._feed = feed
        self._membership = membership
        self._me = me
        self._remotify = remotify
        self._publish_interval = publish_interval
        self.remote: RemoteLayer | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._params_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<ClusterAgent node {self._me.number} {self.remote!r}>"

    @property
    def number(self) -> int:
        return self._me.number

    async def start(self) -> int:
        """Join the cluster and take back this node's pages from its peers; return its number."""
        self.remote = RemoteLayer(self._backend, 0, self._me.epoch, self._remotify)
        number = await self._membership.start(self._info(), self._on_members, self._on_params)
        self._me = replace(self._me, number=number)
        self.remote.me = number
        await self.remote.recover()
        self.remote.start()
        self._publisher = asyncio.create_task(self._publish_forever(), name="ramster-publish")
        return number

    async def stop(self) -> None:
        if self._publisher is not None:
            self._publisher.cancel()
            await asyncio.gather(self._publisher, return_exceptions=True)
        if self.remote is not None:
            await self.remote.stop()
        await self._membership.stop()

    async def drain(self, timeout: float, poll: float = 0.1) -> int:
        """Leave gracefully: publish this node as draining (peers place nothing more here and
        move their copies off it), ship every persistent page of its own to peers, and wait up
        to `timeout` seconds until it holds no page of a live node (an origin that is gone
        cannot move its pages) and none of its own persistent pages. Returns the pages left."""
        self._me = replace(self._me, draining=True)
        await self._membership.publish(self._info())
        if self.remote is not None:
            self.remote.evacuate()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            tmem, store = self._backend.tmem, self._backend.store
            live = {
                origin_client(info.number, info.epoch)
                for info in self._membership.members().values()
            }
            left = 0
            if tmem is not None and store is not None:
                own = store.stats.pers_zpages - tmem.counters()["foreign_pers_pages"]
                left = foreign_pages(tmem, live) + own
            alone = not any(
                holding(info) for n, info in self._membership.members().items() if n != self.number
            )
            if not left or alone or loop.time() >= deadline:  # alone: nowhere to move them
                return left
            if not self._me.draining:  # undrained meanwhile
                return left
            await asyncio.sleep(poll)

    async def undrain(self) -> None:
        """Stay after all: publish this node as up again (peers place pages here once more) and
        stop shipping its own persistent pages away. A `drain` waiting meanwhile returns."""
        self._me = replace(self._me, draining=False)
        await self._membership.publish(self._info())
        if self.remote is not None:
            self.remote.stop_evacuating()

    async def set_param(self, name: str, value: str) -> dict[str, str]:
        """Set a module param on this node; every param after the change."""
        async with self._params_lock:
            switching_off = name == "ramster" and not parse_switch(name, value)
            if switching_off and self._backend.ramster and self.remote is not None:
                await self.remote.bring_home()
            changed = self._backend.set_param(name, value)
            remote = self.remote
            if remote is not None and self._backend.tmem is not None and not remote.recovered:
                await remote.recover()  # it started with zcache off: recovery waited for it
        if changed:
            await self.publish_state()
            await self._membership.publish(self._info())
            if self.remote is not None:
                self.remote.wake()
        return self._backend.params.as_text()

    # -- membership callbacks ----------------------------------------------------------------

    async def _on_members(self, members: dict[int, MemberInfo]) -> None:
        if self.remote is not None:
            # The first view arrives before start() returns, once the number is claimed.
            self.remote.me = self._membership.node_number
            await self.remote.set_members(members)

    async def _on_params(self, params: dict[str, str]) -> None:
        current = self._backend.params.as_text()
        for name, value in sorted(params.items()):
            if current.get(name) == value:
                continue
            try:
                await self.set_param(name, value)
                log.info("cluster param %s = %s applied", name, value)
            except RamsterError as error:
                log.warning("cluster param %s = %s not applied: %s", name, value, error.message)

    # -- publishing --------------------------------------------------------------------------

    def _info(self) -> MemberInfo:
        store = self._backend.store
        memory = self._backend.config.memory
        return replace(
            self._me,
            capacity_bytes=memory,
            free_bytes=max(0, memory - store.used_bytes) if store is not None else 0,
            zcache=self._backend.zcache,
            ramster=self._backend.ramster,
        )

    async def _publish_forever(self) -> None:
        failing = False  # warn once per outage, not every interval
        while True:
            await asyncio.sleep(self._publish_interval)
            try:
                await self._membership.publish(self._info())
            except RamsterError as error:
                (log.debug if failing else log.warning)(
                    "publishing node info failed: %s", error.message
                )
                failing = True
                continue
            if failing:
                log.info("publishing node info works again")
                failing = False

    async def publish_state(self) -> None:
        """Tell the frontends what the backend is now (`Admin.WatchState`)."""
        backend = self._backend
        await self._feed.publish(
            self._feed.status.but(
                zcache=backend.serving,
                ramster=backend.ramster,
                backend_generation=backend.generation,
            )
        )
