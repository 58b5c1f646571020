"""Membership over etcd (docs/design.md §7): stable node numbers, leased node entries, cluster-wide
params and quotas, and a watch that loses no event across an etcd restart.

`EtcdMembership` is the policy; the calls it makes go through `nodemanager.etcd_client`, the one
module that talks to etcd (and translates its errors). What it does:

- start: claim the node's number (``names/<name>``, create-if-absent, numbers from a
  compare-and-swapped ``next_number`` so none is ever reused), grant a lease of ``ttl`` seconds,
  create ``nodes/<number>`` under it, read the prefix, deliver the view, then watch from the read's
  revision + 1;
- every ``ttl/3`` s renew the lease; if etcd says it is gone (it expired while this node could not
  reach etcd), grant a new one and re-create ``nodes/<number>``: same number, new lease;
- etcd keeps every revision until someone compacts it, and a busy cluster writes one a second:
  the lowest-numbered member (each one decides from its own view; two compacting at once is
  harmless) compacts etcd at ``history`` revisions back whenever twice that many have piled up
  since, so etcd holds at most about ``2 * history`` revisions of history;
- while etcd is unreachable the last view is kept and no callback runs; calls that need etcd
  (`publish`, `set_param`) raise `Unavailable`. Once etcd answers, the watch resumes from the last
  revision seen + 1, so every change is delivered in order; if that revision was compacted, the
  prefix is read again and the difference delivered as one change.

Not here: etcd3aio and gRPC (`nodemanager.etcd_client`), the key layout (`nodemanager.keys`), the
view (`nodemanager.view`), callback delivery (`nodemanager.notify`), clusters without etcd
(`nodemanager.static`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
from collections.abc import Sequence

from nodemanager.etcd_client import EtcdClient
from nodemanager.etcd_settings import EtcdCredentials, check_ttl, parse_endpoints
from nodemanager.keys import ClusterKeys, check_name, check_node_name, decode_member, encode_member
from nodemanager.model import MemberInfo, MembersChanged, ParamsChanged, QuotasChanged
from nodemanager.notify import Notifier
from nodemanager.view import Change, ClusterView
from ramster.errors import FailedPrecondition, InvalidArgument, NotFound, RamsterError, shown

__all__ = ["EtcdCredentials", "EtcdMembership", "parse_endpoints"]

log = logging.getLogger("nodemanager.membership")

DEFAULT_HISTORY = 1000
MIN_HISTORY = 10


class EtcdMembership:
    """`Membership` over etcd at `endpoints` (``http://HOST:PORT`` or ``https://HOST:PORT``,
    comma-separated for several).

    cluster: the cluster name; every key lives under ``/ramster/<cluster>/``.
    ttl: seconds the node's entry outlives its last renewal (default 3; etcd grants whole
        seconds, at least 2). The lease is renewed every ``ttl/3`` s.
    timeout: seconds any one etcd call may take (default 2).
    history: revisions of etcd's history kept when this member compacts (>= 10, default 1000;
        a watch that falls further behind reads the prefix again).
    credentials: how to prove itself to etcd (TLS, a client certificate or a user), if etcd
        asks (`EtcdCredentials`).

    Callbacks run one at a time, in order (`nodemanager.notify`); none runs while etcd is
    unreachable, and after an outage the changes missed are delivered one by one, in order.
    """

    def __init__(
        self,
        endpoints: str,
        cluster: str,
        ttl: float = 3.0,
        *,
        timeout: float = 2.0,
        history: int = DEFAULT_HISTORY,
        credentials: EtcdCredentials | None = None,
    ) -> None:
        check_ttl(ttl)
        if not timeout > 0:
            raise InvalidArgument.field("timeout", timeout, "seconds > 0")
        if type(history) is not int or history < MIN_HISTORY:
            raise InvalidArgument.field("history", history, f"revisions >= {MIN_HISTORY}")
        self.history = history
        self._compacted = 0  # the revision this member last compacted etcd at
        self.keys = ClusterKeys(cluster)
        self.ttl = ttl
        self._etcd = EtcdClient(endpoints, timeout, credentials)
        self._view = ClusterView(self.keys)
        self._revision = 0
        self._number = 0
        self._me: MemberInfo | None = None
        self._lease = 0
        self._dirty = False  # the last publish has not reached etcd yet
        self._reachable = False
        self._lock = asyncio.Lock()  # one change of lease or entry at a time
        self._renew_now = asyncio.Event()  # the ttl changed: renew on the new schedule
        self._notifier: Notifier | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._backoff = 0.1  # seconds before the next watch, doubled after each failure up to 2
        self._last_refusal = ""  # the last non-retriable error logged, so it is logged once
        self._earlier: list[str] = []  # this node's recorded epochs before its current one

    def __repr__(self) -> str:
        node = self._number or "-"
        etcd = "up" if self._reachable else "down"
        return (
            f"<EtcdMembership {self.keys.cluster!r} node={node} members={len(self._view.members)}"
            f" revision={self._revision} etcd={etcd}>"
        )

    @property
    def node_number(self) -> int:
        if not self._number:
            raise FailedPrecondition("node_number is known only once start() has returned")
        return self._number

    @property
    def reachable(self) -> bool:
        """Whether the last call to etcd (renewal or watch) got through."""
        return self._reachable

    def members(self) -> dict[int, MemberInfo]:
        return dict(self._view.members)

    def params(self) -> dict[str, str]:
        return dict(self._view.params)

    def forgotten(self) -> dict[int, str]:
        return dict(self._view.forgotten)

    async def forget(self, name: str, announce: float) -> int:
        """Decommission the node called `name`: its claim on its number is released (the number
        is retired: a node started later under the name gets a new one) and ``forgotten/<number>``
        tells every member, for `announce` seconds, to drop what it keeps for that number.
        `FailedPrecondition` while the node is up, `NotFound` for a name never claimed."""
        if self._notifier is None:
            raise FailedPrecondition("forget() before start()")
        check_node_name("name", name)
        retired = await self._etcd.retire_name(
            self.keys.name(name),
            self.keys.node,
            self.keys.forgotten,
            name,
            max(2, math.ceil(announce)),
        )
        if retired is None:
            raise NotFound(
                f"no node called {shown(name)} is known in cluster {self.keys.cluster!r}"
            )
        number, entry = retired
        if entry is not None:
            try:
                where = f" at {decode_member(entry, number).address}"
            except InvalidArgument:
                where = ""
            raise FailedPrecondition(
                f"node {name!r} (number {number}) is up{where}: only a node that has left can "
                "be forgotten (stop it first)"
            )
        # Its pages go with the number: no node will take them back.
        await self._etcd.delete_prefix(self.keys.epochs(number))
        await self._etcd.delete_prefix(self.keys.dictionaries(number))
        log.warning("node %r (number %d) forgotten: its number is retired", name, number)
        return number

    async def start(
        self,
        me: MemberInfo,
        on_members: MembersChanged,
        on_params: ParamsChanged,
        on_quotas: QuotasChanged,
    ) -> int:
        if self._notifier is not None:
            raise FailedPrecondition(f"{self!r} is already started")
        check_node_name("name", me.name)
        await self._etcd.open()
        try:
            number = await self._etcd.claim_number(self.keys.name(me.name), self.keys.next_number)
            self._number, self._me = number, dataclasses.replace(me, number=number)
            self._earlier = await self._record_epoch(me.epoch)
            async with self._lock:
                await self._register(at_start=True)
            revision, entries = await self._etcd.get_prefix(self.keys.prefix)
        except BaseException:
            await self._etcd.close()
            raise
        for problem in self._view.load(entries):
            log.warning("ignored a malformed entry: %s", problem)
        self._revision, self._reachable = revision, True
        self._notifier = Notifier(on_members, on_params, on_quotas)
        self._notifier.members(self._view.members)
        self._notifier.params(self._view.params)
        self._notifier.quotas(self._view.quotas)
        await self._notifier.drain()
        self._tasks = [
            asyncio.create_task(self._renew_forever(), name=f"membership-lease-{number}"),
            asyncio.create_task(self._follow_forever(), name=f"membership-watch-{number}"),
        ]
        log.info(
            "node %r joined cluster %r as number %d (lease %x, ttl %g s, %d members)",
            me.name, self.keys.cluster, number, self._lease, self.ttl, len(self._view.members),
        )  # fmt: skip
        return number

    def earlier_epochs(self) -> list[str] | None:
        return list(self._earlier)

    async def retire_epochs(self, epochs: Sequence[str]) -> None:
        await self._etcd.delete([self.keys.epoch(self._number, epoch) for epoch in epochs])
        self._earlier = [epoch for epoch in self._earlier if epoch not in epochs]

    async def load_dictionaries(self) -> tuple[int, dict[int, str]] | None:
        folder = self.keys.dictionaries(self._number)
        _, entries = await self._etcd.get_prefix(folder)
        records, next_id = {}, 1
        for key, value in entries:
            leaf = key.removeprefix(folder)
            if leaf == "next" and value.isascii() and value.isdigit():
                next_id = int(value)
            elif leaf.isascii() and leaf.isdigit():
                records[int(leaf)] = value.decode(errors="replace")
            else:
                log.warning("ignored a malformed dictionary key %s", shown(key))
        return next_id, records

    async def save_dictionary(self, dict_id: int, record: str) -> None:
        # The id is reserved first: a record lost between the two writes leaves a gap, never
        # an id used twice.
        await self._etcd.put(self.keys.next_dictionary(self._number), str(dict_id + 1))
        await self._etcd.put(self.keys.dictionary(self._number, dict_id), record)

    async def drop_dictionaries(self, dict_ids: Sequence[int]) -> None:
        await self._etcd.delete([self.keys.dictionary(self._number, i) for i in dict_ids])

    async def _record_epoch(self, epoch: str) -> list[str]:
        """Record `epoch` as this node's newest; return the epochs recorded before it, oldest
        first."""
        folder = self.keys.epochs(self._number)
        await self._etcd.put(self.keys.epoch(self._number, epoch), "")
        recorded = [key.removeprefix(folder) for key in await self._etcd.created_order(folder)]
        return [earlier for earlier in recorded if earlier != epoch]

    async def publish(self, me: MemberInfo) -> None:
        """Publish `me` (its number is replaced by this node's); nothing to do if it is what etcd
        has already. While etcd is unreachable a change raises `Unavailable` and goes out as soon
        as etcd answers again."""
        if self._me is None:
            raise FailedPrecondition("publish() before start()")
        if me.name != self._me.name:
            raise InvalidArgument.field("name", me.name, f"this node's name {self._me.name!r}")
        me = dataclasses.replace(me, number=self._number)
        if me == self._me and not self._dirty:
            return
        self._me, self._dirty = me, True
        async with self._lock:
            await self._put_me()

    async def set_param(self, name: str, value: str) -> None:
        if self._notifier is None:
            raise FailedPrecondition("set_param() before start()")
        check_name("param", name)
        await self._etcd.put(self.keys.param(name), value)

    async def stop(self, *, revoke: bool = True) -> None:
        """Stop renewing and watching; with `revoke` (default) withdraw the entry now (at most
        `timeout` s), else leave it to expire within `ttl` s, as a crash would."""
        if self._notifier is None:
            return  # never started, or a failed start that closed everything already
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if revoke and self._lease:
            try:
                await self._etcd.revoke(self._lease, self._etcd.timeout)
            except RamsterError as error:
                log.warning("%s; node %d's entry expires in %g s", error, self._number, self.ttl)
            self._lease = 0
        await self._notifier.close()
        await self._etcd.close()
        self._notifier, self._reachable = None, False
        log.info("node %d left cluster %r (revoked: %s)", self._number, self.keys.cluster, revoke)

    # The lease and this node's entry. Callers hold self._lock.

    async def _register(self, *, at_start: bool) -> None:
        """Create ``nodes/<number>`` under a new lease. At start, an entry left by this node's
        previous run is waited out (until its lease expires); a live one is an error."""
        assert self._me is not None
        key, value = self.keys.node(self._number), encode_member(self._me)
        lease = await self._etcd.grant(math.ceil(self.ttl))
        deadline: float | None = None
        try:
            while (holder := await self._etcd.create(key, value, lease)) is not None:
                held, holder_lease = holder
                try:
                    other = decode_member(held, self._number)
                except InvalidArgument:
                    other = None
                if other and (other.name, other.epoch) == (self._me.name, self._me.epoch):
                    await self._etcd.put(key, value, lease)  # our own entry, under a dead lease
                    break
                now = asyncio.get_running_loop().time()
                if deadline is None and at_start and holder_lease:
                    # etcd reports whole seconds left and reaps expired leases every 0.5 s.
                    deadline = now + max(await self._etcd.time_to_live(holder_lease), 0) + 2.0
                if deadline is None or now > deadline:
                    where = f"{other.address} (epoch {other.epoch})" if other else "another node"
                    raise FailedPrecondition(
                        f"node name {self._me.name!r} (number {self._number}) is held by a live "
                        f"node at {where}: stop it, or give this node another name"
                    )
                await self._etcd.keep_alive(lease)  # ours must outlive the wait for theirs
                await asyncio.sleep(0.2)
        except RamsterError:
            with contextlib.suppress(RamsterError):
                await self._etcd.revoke(lease, self._etcd.timeout)
            raise
        self._lease, self._dirty = lease, False

    async def _put_me(self) -> None:
        assert self._me is not None
        try:
            await self._etcd.put(self.keys.node(self._number), encode_member(self._me), self._lease)
        except NotFound:  # the lease expired: the entry went with it
            log.warning("node %d's lease %x is gone; registering again", self._number, self._lease)
            await self._register(at_start=False)
        self._dirty = False

    async def set_lease_ttl(self, ttl: float) -> None:
        """Move this node's entry to a new lease of `ttl` seconds, then revoke the old lease
        (the entry no longer goes with it); before `start`, `start` grants it."""
        check_ttl(ttl, "lease_ttl")
        async with self._lock:
            old, self.ttl = self._lease, ttl
            if not old or self._notifier is None:
                return
            self._lease = await self._etcd.grant(math.ceil(ttl))
            await self._put_me()
            log.info("node %d: lease %x of %g s replaces lease %x", self._number, self._lease,
                     ttl, old)  # fmt: skip
            try:
                await self._etcd.revoke(old, self._etcd.timeout)
            except RamsterError as error:  # it expires by itself, taking nothing with it
                log.warning("lease %x stays until it expires: %s", old, error.message)
        self._renew_now.set()

    async def _renew_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):  # at the latest a third of the ttl from now
                await asyncio.wait_for(self._renew_now.wait(), self.ttl / 3)
            self._renew_now.clear()
            try:
                async with self._lock:
                    if await self._etcd.keep_alive(self._lease) <= 0:
                        log.warning(
                            "node %d's lease %x expired while etcd was out of reach; "
                            "registering again under the same number",
                            self._number, self._lease,
                        )  # fmt: skip
                        await self._register(at_start=False)
                    elif self._dirty:
                        await self._put_me()
                self._set_reachable(True)
                await self._compact_if_due()
            except RamsterError as error:
                self._failed(error)

    async def _compact_if_due(self) -> None:
        """Compact etcd's history to `history` revisions once twice that many piled up, if this
        is the lowest-numbered member in view (the one that compacts for the cluster)."""
        if not self._view.members or min(self._view.members) != self._number:
            return
        revision = self._etcd.revision
        if revision - self._compacted < 2 * self.history:
            return
        keep_from = revision - self.history
        if await self._etcd.compact(keep_from):
            log.debug("compacted etcd before revision %d (now at %d)", keep_from, revision)
        self._compacted = keep_from  # or later, if another member compacted further already

    # Following the prefix.

    async def _follow_forever(self) -> None:
        while True:
            try:
                await self._follow(self._revision + 1)
            except RamsterError as error:
                self._failed(error)
                await asyncio.sleep(self._backoff)
                self._backoff = min(self._backoff * 2, 2.0)

    async def _follow(self, start_revision: int) -> None:
        """Apply every change from `start_revision` on; return when etcd lost that history (after
        reading the prefix again), raise when the stream fails."""
        watch = self._etcd.watch(self.keys.prefix, start_revision)
        async with contextlib.aclosing(watch) as batches:
            async for batch in batches:
                if batch.history_lost or (batch.created and batch.revision < self._revision):
                    log.warning(
                        "etcd no longer has revision %d of cluster %r; reading it again",
                        start_revision, self.keys.cluster,
                    )  # fmt: skip
                    await self._reload()
                    return
                if batch.created:
                    self._set_reachable(True)
                    self._backoff = 0.1
                self._apply(batch.events)

    def _apply(self, events: tuple[tuple[int, str, bytes | None], ...]) -> None:
        # Never apply a revision twice, should a stream repeat one; a revision is never split
        # across responses, so comparing with the revision before this batch is exact.
        applied, mine = self._revision, self.keys.node(self._number)
        for revision, key, value in events:
            if revision > applied:
                self._deliver(self._view.apply(key, value))
                self._revision = max(self._revision, revision)
                if key == mine and value is None:
                    self._dirty = True  # deleted, by its lease's end or by hand: put it back

    async def _reload(self) -> None:
        revision, entries = await self._etcd.get_prefix(self.keys.prefix)
        old_members, old_params = self._view.members, self._view.params
        old_forgotten, old_quotas = self._view.forgotten, self._view.quotas
        for problem in self._view.load(entries):
            log.warning("ignored a malformed entry: %s", problem)
        if self._view.members != old_members or self._view.forgotten != old_forgotten:
            self._deliver(Change("members"))
        if self._view.params != old_params:
            self._deliver(Change("params"))
        if self._view.quotas != old_quotas:
            self._deliver(Change("quotas"))
        self._revision = revision

    def _deliver(self, change: Change) -> None:
        if change.problem:
            log.warning("ignored a malformed entry: %s", change.problem)
        if self._notifier is None or change.changed is None:
            return
        if change.changed == "members":
            self._notifier.members(self._view.members)
        elif change.changed == "params":
            self._notifier.params(self._view.params)
        else:
            self._notifier.quotas(self._view.quotas)

    def _failed(self, error: RamsterError) -> None:
        """Note a failed call: etcd out of reach, or (once per message) a refusal to retry."""
        if error.retriable:
            self._set_reachable(False, error)
        elif error.message != self._last_refusal:
            log.error("%s; retrying", error.message)
            self._last_refusal = error.message

    def _set_reachable(self, reachable: bool, error: RamsterError | None = None) -> None:
        if reachable and not self._reachable:
            log.info("etcd at %s answers again", self._etcd.endpoints)
            self._last_refusal = ""
        elif not reachable and self._reachable:
            log.warning(
                "%s: keeping the last view (%d members) and retrying",
                error, len(self._view.members),
            )  # fmt: skip
        self._reachable = reachable
