"""`ClusterAgent`: one node's place in the cluster — membership, peers, params, and switches.

It joins through a `Membership` (etcd, or a static peer list), takes back the pages its earlier
epoch left on peers, publishes the node's free bytes when they moved by a `FREE_BYTES_STEP`th of
its budget (checked every `publish_interval`: etcd keeps every write), hands each new
view to the remote layer, and applies module params, whether set on this node
(`Admin.SetParam`) or cluster-wide (etcd ``params/``), and the cluster-wide quotas of client
identities (etcd ``quotas/``; `Admin.SetQuota` sets one on this node alone). Nodes out of the
view for `origin_grace` seconds, or forgotten by an operator (`forget_node`), are let go of: the
pages held for them and the flushes queued for them are dropped. Switching `ramster` off brings
the persistent pages home first and is reported only once that is done. Foreign pages stay until
their origin flushes them, takes them back after a restart (`Peer/Recover`) or has them
forgotten (`Peer/Forget`). `drain` leaves gracefully: published as draining, the node waits for
its peers to move their copies off it; `undrain` takes that back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

from nodemanager.keys import check_node_name
from nodemanager.model import MemberInfo, Membership
from ramster.backend import Backend
from ramster.errors import InvalidArgument, RamsterError, shown
from ramster.holder.foreign import foreign_pages, origin_client
from ramster.params import parse_quota, parse_switch
from ramster.remote.dictionary_book import DictionaryBook
from ramster.remote.layer import RemoteLayer
from ramster.remote.peer import LinkFactory
from ramster.remote.policy import RemotifyConfig, holding
from ramster.state import StateFeed
from ramster.trust.identity import owner_identity
from ramster.trust.seal import OriginSeal

log = logging.getLogger("ramster.cluster")

FREE_BYTES_STEP = 32
"""Free bytes are published again once they moved by 1/32 of the budget (or reached or left
zero): publishing every change would write an etcd revision every second on a busy node."""


def worth_publishing(published: MemberInfo | None, now: MemberInfo) -> bool:
    """Whether `now` differs enough from what was `published` last to write it to etcd: any
    field but free bytes, free bytes by `FREE_BYTES_STEP`, or running full or no longer full."""
    if published is None or replace(published, free_bytes=now.free_bytes) != now:
        return True
    moved = abs(now.free_bytes - published.free_bytes)
    full_changed = (now.free_bytes == 0) != (published.free_bytes == 0)
    return full_changed or moved * FREE_BYTES_STEP >= now.capacity_bytes


LET_GO_INTERVAL = 1.0
"""Seconds between looks for nodes out of the view for `origin_grace` (whole seconds)."""


class ClusterAgent:
    """Membership, remote layer and module params of one node. It holds what the node
    publishes (`me`: its address given to `start`, its number once `start` has joined, whether
    it drains) and the number the membership claimed, which the remote layer needs from the
    first view on; the remote layer and the node's services read them here, from no other
    copy."""

    def __init__(
        self,
        backend: Backend,
        feed: StateFeed,
        membership: Membership,
        me: MemberInfo,
        remotify: RemotifyConfig,
        link_factory: LinkFactory,
        publish_interval: float = 1.0,
        seal: OriginSeal | None = None,
    ) -> None:
        self._backend = backend
        self._feed = feed
        self._membership = membership
        self._me = me
        self._publish_interval = publish_interval
        self._claimed = 0  # the number the membership claimed: known from its first view on
        self.remote = RemoteLayer(backend, lambda: self._claimed, me.epoch, remotify, link_factory)
        self.dictionaries = DictionaryBook(membership, seal)
        """The record of the persistent pools' dictionaries (`seal`: how they are sealed)."""
        self._publisher: asyncio.Task[None] | None = None
        self._letting_go: asyncio.Task[None] | None = None
        self._published: MemberInfo | None = None  # what the last publish wrote
        self._params_lock = asyncio.Lock()
        self._refused_params: dict[str, str] = {}  # cluster params not applied, logged once
        self._cluster_quotas: dict[str, str] = {}  # etcd's quotas as last seen, applied or not

    def __repr__(self) -> str:
        return f"<ClusterAgent node {self._me.number} {self.remote!r}>"

    @property
    def number(self) -> int:
        """This node's number in the cluster: 0 until `start` has joined."""
        return self._me.number

    def members(self) -> dict[int, MemberInfo]:
        """The members in this node's view now, by number (itself included)."""
        return self._membership.members()

    @property
    def draining(self) -> bool:
        """Whether the node drains (`drain` until `undrain`): it takes no new pages of peers."""
        return self._me.draining

    async def start(self, address: str) -> int:
        """Join the cluster, reached at `address`, and take back this node's pages from its
        peers; return its number."""
        self._me = replace(self._me, address=address)
        number = await self._membership.start(
            self._info(), self._on_members, self._on_params, self._on_quotas
        )
        self._me = replace(self._me, number=number)
        await self._recover()
        self.remote.start()
        self._publisher = asyncio.create_task(self._publish_forever(), name="ramster-publish")
        self._letting_go = asyncio.create_task(self._let_go_forever(), name="ramster-let-go")
        return number

    async def _recover(self) -> None:
        """Take back the pages of this node's earlier epochs (the membership's record); once
        every peer in view handed them over, drop those epochs from the record. The
        dictionaries of the persistent pools come back first: the pages need them."""
        tmem, store = self._backend.tmem, self._backend.store
        if tmem is not None and store is not None:
            await self.dictionaries.restore(store.dictionaries, tmem)
        earlier = self._membership.earlier_epochs()
        await self.remote.recover(earlier, self._backend.params.recover_timeout)
        if not self.remote.recovered or self.remote.peers.unrecovered:
            return  # a peer that did not answer may hold them still: the record stays
        if tmem is not None and store is not None:
            await self.dictionaries.erase_unrecovered(store.dictionaries, tmem)
        if not earlier:
            return
        try:
            await self._membership.retire_epochs(earlier)
        except RamsterError as error:
            log.warning("epochs %s stay recorded: %s", ", ".join(earlier), error.message)

    async def stop(self) -> None:
        tasks = [t for t in (self._publisher, self._letting_go) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.remote.stop()
        await self._membership.stop()

    async def drain(self, timeout: float, poll: float = 0.1) -> int:
        """Leave gracefully: publish this node as draining (peers place nothing more here and
        move their copies off it), ship every persistent page of its own to peers, and wait up
        to `timeout` seconds until it holds no page of a live node (an origin that is gone
        cannot move its pages) and none of its own persistent pages. Returns the pages left."""
        self._me = replace(self._me, draining=True)
        await self._publish()
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
                left = foreign_pages(tmem.table, live) + own
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
        await self._publish()
        self.remote.stop_evacuating()

    async def set_param(self, name: str, value: str) -> dict[str, str]:
        """Set a module param on this node; every param after the change."""
        async with self._params_lock:
            switching_off = name == "ramster" and not parse_switch(name, value)
            if switching_off and self._backend.ramster:
                await self.remote.bring_home()
            if name == "lease_ttl":
                ttl = self._backend.params.with_text(name, value).lease_ttl
                if ttl != self._backend.params.lease_ttl:
                    await self._membership.set_lease_ttl(ttl)
            changed = self._backend.set_param(name, value)
            if self._backend.tmem is not None and not self.remote.recovered:
                await self._recover()  # it started with zcache off: recovery waited for it
        if changed:
            await self.publish_state()
            await self._publish()
            self.remote.wake()
        return self._backend.params.as_text()

    async def forget_node(self, name: str) -> int:
        """Decommission the node called `name`, which must have left: every member drops the
        pages it holds for it and the flushes queued for it (`Membership.forget`); its number."""
        check_node_name("name", name)  # before any backend, whose refusals may quote it
        number = await self._membership.forget(name, self._backend.params.origin_grace)
        self._let_go()  # here at once, if this view knows it left; else when it does
        return number

    def _let_go(self) -> None:
        self.remote.forget_gone(
            time.monotonic(),
            self._backend.params.origin_grace,
            self._membership.reachable,
            self._membership.forgotten(),
        )

    async def _let_go_forever(self) -> None:
        while True:
            await asyncio.sleep(LET_GO_INTERVAL)
            self._let_go()

    # -- membership callbacks ----------------------------------------------------------------

    async def _on_members(self, members: dict[int, MemberInfo]) -> None:
        # The first view arrives before start() returns, once the number is claimed.
        self._claimed = self._membership.node_number
        await self.remote.set_members(members)
        self._let_go()  # a node forgotten by an operator goes now

    async def _on_params(self, params: dict[str, str]) -> None:
        current = self._backend.params.as_text()
        for name, value in sorted(params.items()):
            if current.get(name) == value or self._refused_params.get(name) == value:
                continue
            try:
                await self.set_param(name, value)
                log.info("cluster param %s = %s applied", name, shown(value))
                self._refused_params.pop(name, None)
            except InvalidArgument as error:
                # It can never apply: the last good value stays, and this is logged once, not
                # on every later change of the params.
                self._refused_params[name] = value
                log.warning(
                    "cluster param %s = %s not applied: %s", name, shown(value), error.message
                )
            except RamsterError as error:  # refused now (say, pages could not come home)
                log.warning(
                    "cluster param %s = %s not applied: %s", name, shown(value), error.message
                )

    async def _on_quotas(self, quotas: dict[str, str]) -> None:
        """Set each cluster-wide quota that is new or changed since the last view on this node,
        and unset each one deleted from etcd. A quota that can never apply is logged once; the
        identity keeps what it had."""
        for identity, text in sorted(quotas.items()):
            if self._cluster_quotas.get(identity) == text:
                continue
            try:
                owner = str(owner_identity(identity, "identity"))
                nbytes = parse_quota(text, "size")
            except InvalidArgument as error:
                log.warning("cluster quota of %s not applied: %s", shown(identity), error.message)
                continue
            self._backend.set_quota(owner, nbytes)
            log.info("cluster quota of %s = %d bytes applied", owner, nbytes)
        for identity in sorted(self._cluster_quotas.keys() - quotas.keys()):
            if self._backend.unset_quota(identity):  # it was set: a valid identity
                log.info("cluster quota of %s unset", identity)
        self._cluster_quotas = dict(quotas)

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
            if not worth_publishing(self._published, self._info()):
                continue
            try:
                await self._publish()
            except RamsterError as error:
                (log.debug if failing else log.warning)(
                    "publishing node info failed: %s", error.message
                )
                failing = True
                continue
            if failing:
                log.info("publishing node info works again")
                failing = False

    async def _publish(self) -> None:
        info = self._info()
        await self._membership.publish(info)
        self._published = info

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
