"""Membership over etcd (DESIGN §7): stable node numbers, leased node entries, cluster-wide params,
and a watch that loses no event across an etcd restart.

The only module that imports etcd3aio. `_Etcd` is the seam: a few calls in plain Python values, each
translating etcd3aio and gRPC errors once through `_STATUS` into `ramster.errors`. `EtcdMembership`
is the policy on top:

- start: claim the node's number (``names/<name>``, create-if-absent, numbers from a
  compare-and-swapped ``next_number`` so none is ever reused), grant a lease of ``ttl`` seconds,
  create ``nodes/<number>`` under it, read the prefix, deliver the view, then watch from the read's
  revision + 1;
- every ``ttl/3`` s renew the lease; if etcd says it is gone (it expired while this node could not
  reach etcd), grant a new one and re-create ``nodes/<number>``: same number, new lease;
- while etcd is unreachable the last view is kept and no callback runs; calls that need etcd
  (`publish`, `set_param`) raise `Unavailable`. Once etcd answers, the watch resumes from the last
  revision seen + 1, so every change is delivered in order; if that revision was compacted, the
  prefix is read again and the difference delivered as one change.

Not here: the key layout (`nodemanager.keys`), the view (`nodemanager.view`), callback delivery
(`nodemanager.notify`), clusters without etcd (`nodemanager.static`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
from collections.abc import AsyncGenerator, Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import grpc
import grpc.aio
from etcd3aio import (
    EtcdConnectionError,
    EtcdError,
    EtcdPermissionDeniedError,
    EtcdTransientError,
    EtcdUnauthenticatedError,
    prefix_range_end,
)
from etcd3aio.connections import ConnectionManager
from etcd3aio.kv import KVService
from etcd3aio.lease import LeaseService
from etcd3aio.watch import WatchService

from nodemanager.keys import ClusterKeys, check_name, decode_member, encode_member
from nodemanager.model import MemberInfo, MembersChanged, ParamsChanged
from nodemanager.notify import Notifier
from nodemanager.view import Change, ClusterView
from ramster.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InternalError,
    InvalidArgument,
    NotFound,
    RamsterError,
    ResourceExhausted,
    Unavailable,
)

log = logging.getLogger("nodemanager.membership")

T = TypeVar("T")

_STATUS: dict[grpc.StatusCode, type[RamsterError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,  # "requested lease not found"
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,  # "database space exceeded"
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.PERMISSION_DENIED: FailedPrecondition,
    grpc.StatusCode.UNAUTHENTICATED: FailedPrecondition,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}
"""Every status etcd answers with, as the error RAMster raises; any other is `InternalError`."""

_LIBRARY: dict[type[Exception], grpc.StatusCode] = {
    EtcdConnectionError: grpc.StatusCode.UNAVAILABLE,
    EtcdTransientError: grpc.StatusCode.DEADLINE_EXCEEDED,
    EtcdUnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    EtcdPermissionDeniedError: grpc.StatusCode.PERMISSION_DENIED,
}
"""etcd3aio's own errors, by the status they stand for."""

_DELETE = 1  # mvccpb.Event.EventType.DELETE
_CLAIM_ATTEMPTS = 100


def parse_endpoints(endpoints: str) -> list[str]:
    """``HOST:PORT`` of each of ``http://HOST:PORT[,http://HOST:PORT...]`` (scheme optional)."""
    parsed = []
    for item in endpoints.split(","):
        scheme, sep, address = item.strip().rpartition("://")
        host, colon, port = address.rstrip("/").rpartition(":")
        if (sep and scheme != "http") or not colon or not host or not port.isdigit():
            raise InvalidArgument.field(
                "etcd endpoint", item.strip(), "http://HOST:PORT (TLS is not supported yet)"
            )
        parsed.append(f"{host}:{port}")
    return parsed


@dataclass(frozen=True, slots=True)
class _WatchBatch:
    """One watch response: `events` are (revision, key, value or None for a delete)."""

    created: bool
    history_lost: bool  # etcd compacted the revision asked for, or cancelled the watch
    revision: int
    events: tuple[tuple[int, str, bytes | None], ...]


class _Etcd:
    """The seam: a channel to etcd and the handful of calls membership makes over it."""

    def __init__(self, endpoints: str, timeout: float) -> None:
        self.endpoints = endpoints
        self.timeout = timeout
        self._addresses = parse_endpoints(endpoints)
        self._channel: grpc.aio.Channel | None = None

    async def open(self) -> None:
        manager = ConnectionManager(self._addresses)
        # gRPC's default reconnect backoff grows to 120 s: after a long outage a node would not
        # notice etcd back for minutes. Bound it like every other retry here (0.1 s to 2 s).
        manager.grpc_options += [
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 2000),
        ]
        self._channel = manager.get_channel()
        self._kv = KVService(self._channel, max_attempts=2)
        self._lease = LeaseService(self._channel, max_attempts=2)
        self._watch = WatchService(
            self._channel, reconnect_backoff_seconds=0.1, max_reconnect_backoff_seconds=2.0
        )

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(None)
            self._channel = None

    async def _call(self, doing: str, call: Awaitable[T]) -> T:
        try:
            return await call
        except (EtcdError, grpc.aio.AioRpcError, TimeoutError) as error:
            raise self._translate(error, doing) from error

    def _translate(self, error: Exception, doing: str) -> RamsterError:
        cause = error if isinstance(error, grpc.aio.AioRpcError) else error.__cause__
        if isinstance(cause, grpc.aio.AioRpcError):
            code, detail = cause.code(), cause.details() or ""
        elif isinstance(error, TimeoutError):
            code, detail = grpc.StatusCode.DEADLINE_EXCEEDED, ""
        else:
            code, detail = _LIBRARY.get(type(error), grpc.StatusCode.UNKNOWN), str(error)
        kind = _STATUS.get(code, InternalError)
        if kind is Unavailable:
            return Unavailable(f"etcd at {self.endpoints} is unreachable ({doing})")
        if kind is DeadlineExceeded:
            return DeadlineExceeded(f"etcd at {self.endpoints} did not answer in time ({doing})")
        return kind(f"etcd at {self.endpoints} refused {doing}: {code.name} {detail}".rstrip())

    async def get_prefix(self, prefix: str) -> tuple[int, list[tuple[str, bytes]]]:
        """The current revision and every (key, value) under `prefix`."""
        response = await self._call(
            f"reading {prefix}",
            self._kv.get(prefix, prefix_range_end(prefix), timeout=self.timeout),
        )
        entries = [(kv.key.decode(), bytes(kv.value)) for kv in response.kvs]
        return int(response.header.revision), entries

    async def put(self, key: str, value: str, lease: int = 0) -> None:
        await self._call(
            f"writing {key}", self._kv.put(key, value, lease=lease, timeout=self.timeout)
        )

    async def claim_number(self, name_key: str, counter_key: str) -> int:
        """The number stored at `name_key`; if none, the counter's value, claimed for `name_key`
        in the same transaction that advances the counter (retried while others claim too)."""
        version, number = 0, 1  # the counter is absent in a new cluster
        for _ in range(_CLAIM_ATTEMPTS):
            response = await self._call(
                f"claiming {name_key}",
                self._kv.txn(
                    compare=[
                        KVService.txn_compare_create_revision(name_key, 0),
                        KVService.txn_compare_version(counter_key, version),
                    ],
                    success=[
                        KVService.txn_op_put(name_key, str(number)),
                        KVService.txn_op_put(counter_key, str(number + 1)),
                    ],
                    failure=[KVService.txn_op_get(name_key), KVService.txn_op_get(counter_key)],
                    timeout=self.timeout,
                ),
            )
            if response.succeeded:
                return number
            named, counter = (op.response_range.kvs for op in response.responses)
            if named:
                return _decimal(name_key, named[0].value)
            version = int(counter[0].version) if counter else 0
            number = _decimal(counter_key, counter[0].value) if counter else 1
        raise Unavailable(f"{_CLAIM_ATTEMPTS} claims of {name_key} in a row lost a race")

    async def create(self, key: str, value: str, lease: int) -> tuple[bytes, int] | None:
        """Create `key` under `lease` unless it exists; if it does, its (value, lease)."""
        while True:
            response = await self._call(
                f"creating {key}",
                self._kv.txn(
                    compare=[KVService.txn_compare_create_revision(key, 0)],
                    success=[KVService.txn_op_put(key, value, lease=lease)],
                    failure=[KVService.txn_op_get(key)],
                    timeout=self.timeout,
                ),
            )
            if response.succeeded:
                return None
            if holders := response.responses[0].response_range.kvs:
                return bytes(holders[0].value), int(holders[0].lease)

    async def grant(self, ttl: int) -> int:
        response = await self._call(
            "granting a lease", self._lease.grant(ttl, timeout=self.timeout)
        )
        return int(response.ID)

    async def time_to_live(self, lease: int) -> int:
        """Seconds `lease` has left (-1: gone)."""
        response = await self._call(
            f"reading lease {lease:x}", self._lease.time_to_live(lease, timeout=self.timeout)
        )
        return int(response.TTL)

    async def keep_alive(self, lease: int) -> int:
        """Renew `lease` once; its new TTL, 0 when etcd no longer knows it."""
        return await self._call(f"renewing lease {lease:x}", self._keep_alive(lease))

    async def _keep_alive(self, lease: int) -> int:
        async with asyncio.timeout(self.timeout):
            call = self._lease.keep_alive(lease)
            try:
                async for response in call:
                    return int(response.TTL)
            finally:
                call.cancel()
        raise Unavailable(f"etcd at {self.endpoints} ended the renewal of lease {lease:x}")

    async def revoke(self, lease: int, timeout: float) -> None:
        await self._call(
            f"revoking lease {lease:x}",
            self._lease.revoke(lease, timeout=timeout, max_attempts=1),
        )

    async def watch(self, prefix: str, start_revision: int) -> AsyncGenerator[_WatchBatch, None]:
        """Every change under `prefix` from `start_revision` on. etcd3aio re-creates the stream by
        itself after a transient error; each creation yields a batch with `created` set."""
        responses = cast(
            AsyncGenerator[Any, None],
            self._watch.watch(prefix, prefix_range_end(prefix), start_revision=start_revision),
        )
        try:
            while True:
                try:
                    response = await self._call(f"watching {prefix}", anext(responses))
                except StopAsyncIteration:
                    return
                events = tuple(
                    (
                        int(event.kv.mod_revision),
                        event.kv.key.decode(),
                        None if event.type == _DELETE else bytes(event.kv.value),
                    )
                    for event in response.events
                )
                yield _WatchBatch(
                    created=bool(response.created),
                    history_lost=response.compact_revision > 0 or bool(response.canceled),
                    revision=int(response.header.revision),
                    events=events,
                )
        finally:
            await responses.aclose()


def _decimal(key: str, value: bytes) -> int:
    if not value.isdigit():
        raise FailedPrecondition(f"{key} holds {value!r}: expected a node number")
    return int(value)


class EtcdMembership:
    """`Membership` over etcd at `endpoints` (``http://HOST:PORT``, comma-separated for several).

    cluster: the cluster name; every key lives under ``/ramster/<cluster>/``.
    ttl: seconds the node's entry outlives its last renewal (default 3; etcd grants whole
        seconds, at least 2). The lease is renewed every ``ttl/3`` s.
    timeout: seconds any one etcd call may take (default 2).

    Callbacks run one at a time, in order (`nodemanager.notify`); none runs while etcd is
    unreachable, and after an outage the changes missed are delivered one by one, in order.
    """

    def __init__(
        self, endpoints: str, cluster: str, ttl: float = 3.0, *, timeout: float = 2.0
    ) -> None:
        if not 1.0 <= ttl <= 3600.0:
            raise InvalidArgument.field("ttl", ttl, "seconds in 1..3600")
        if not timeout > 0:
            raise InvalidArgument.field("timeout", timeout, "seconds > 0")
        self.keys = ClusterKeys(cluster)
        self.ttl = ttl
        self._etcd = _Etcd(endpoints, timeout)
        self._view = ClusterView(self.keys)
        self._revision = 0
        self._number = 0
        self._me: MemberInfo | None = None
        self._lease = 0
        self._dirty = False  # the last publish has not reached etcd yet
        self._reachable = False
        self._lock = asyncio.Lock()  # one change of lease or entry at a time
        self._notifier: Notifier | None = None
        self._tasks: list[asyncio.Task[None]] = []

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

    async def start(
        self, me: MemberInfo, on_members: MembersChanged, on_params: ParamsChanged
    ) -> int:
        if self._notifier is not None:
            raise FailedPrecondition(f"{self!r} is already started")
        check_name("name", me.name)
        await self._etcd.open()
        try:
            number = await self._etcd.claim_number(self.keys.name(me.name), self.keys.next_number)
            self._number, self._me = number, dataclasses.replace(me, number=number)
            async with self._lock:
                await self._register(at_start=True)
            revision, entries = await self._etcd.get_prefix(self.keys.prefix)
        except BaseException:
            await self._etcd.close()
            raise
        for problem in self._view.load(entries):
            log.warning("ignored a malformed entry: %s", problem)
        self._revision, self._reachable = revision, True
        self._notifier = Notifier(on_members, on_params)
        self._notifier.members(self._view.members)
        self._notifier.params(self._view.params)
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

    async def publish(self, me: MemberInfo) -> None:
        """Publish `me` (its number is replaced by this node's). While etcd is unreachable this
        raises `Unavailable`, and `me` goes out as soon as etcd answers again."""
        if self._me is None:
            raise FailedPrecondition("publish() before start()")
        if me.name != self._me.name:
            raise InvalidArgument.field("name", me.name, f"this node's name {self._me.name!r}")
        self._me, self._dirty = dataclasses.replace(me, number=self._number), True
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
        if self._notifier is not None:
            await self._notifier.close()
        await self._etcd.close()
        self._reachable = False
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
                    deadline = now + await self._etcd.time_to_live(holder_lease) + 1.0
                if deadline is None or now > deadline:
                    where = f"{other.address} (epoch {other.epoch})" if other else "another node"
                    raise FailedPrecondition(
                        f"node name {self._me.name!r} (number {self._number}) is held by a live "
                        f"node at {where}: stop it, or give this node another name"
                    )
                await asyncio.sleep(0.1)
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

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
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
            except RamsterError as error:
                self._set_reachable(False, error)

    # Following the prefix.

    async def _follow_forever(self) -> None:
        delay = 0.1
        while True:
            try:
                await self._follow(self._revision + 1)
                delay = 0.1
            except RamsterError as error:
                self._set_reachable(False, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _follow(self, start_revision: int) -> None:
        """Apply every change from `start_revision` on; return when the watch must start again:
        etcd3aio re-created the stream by itself (from its own idea of where it was, which can
        skip events: a stream created at revision R is answered with R before the events up to R
        arrive), or etcd lost the history asked for."""
        created = 0
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
                    created += 1
                    if created > 1:
                        return
                    self._set_reachable(True)
                self._apply(batch.events)

    def _apply(self, events: tuple[tuple[int, str, bytes | None], ...]) -> None:
        # A restarted watch may repeat revisions already applied; a revision is never split
        # across responses, so comparing with the revision before this batch is exact.
        applied = self._revision
        for revision, key, value in events:
            if revision > applied:
                self._deliver(self._view.apply(key, value))
                self._revision = max(self._revision, revision)

    async def _reload(self) -> None:
        revision, entries = await self._etcd.get_prefix(self.keys.prefix)
        old_members, old_params = self._view.members, self._view.params
        for problem in self._view.load(entries):
            log.warning("ignored a malformed entry: %s", problem)
        if self._view.members != old_members:
            self._deliver(Change("members"))
        if self._view.params != old_params:
            self._deliver(Change("params"))
        self._revision = revision

    def _deliver(self, change: Change) -> None:
        if change.problem:
            log.warning("ignored a malformed entry: %s", change.problem)
        if self._notifier is None or change.changed is None:
            return
        if change.changed == "members":
            self._notifier.members(self._view.members)
        else:
            self._notifier.params(self._view.params)

    def _set_reachable(self, reachable: bool, error: RamsterError | None = None) -> None:
        if reachable and not self._reachable:
            log.info("etcd at %s answers again", self._etcd.endpoints)
        elif not reachable and self._reachable:
            log.warning(
                "%s: keeping the last view (%d members) and retrying",
                error, len(self._view.members),
            )  # fmt: skip
        self._reachable = reachable


async def read_members(endpoints: str, cluster: str, timeout: float = 5.0) -> list[MemberInfo]:
    """The members of `cluster` now, by number: one read of its prefix (for ``ramster members``)."""
    keys = ClusterKeys(cluster)
    etcd = _Etcd(endpoints, timeout)
    await etcd.open()
    try:
        _, entries = await etcd.get_prefix(keys.prefix)
    finally:
        await etcd.close()
    view = ClusterView(keys)
    for problem in view.load(entries):
        log.warning("ignored a malformed entry: %s", problem)
    return [view.members[number] for number in sorted(view.members)]
