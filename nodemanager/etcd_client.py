"""The one module that talks to etcd: a channel and the handful of calls membership makes over it.

`EtcdClient` speaks in plain Python values (keys, bytes, revisions, lease ids) and translates every
etcd3aio and gRPC error once, through `_STATUS`, into `ramster.errors`: etcd down is `Unavailable`,
a call that took too long `DeadlineExceeded`, an unknown lease `NotFound`, and so on. Nothing else
imports etcd3aio (a unit test checks).

A client proves itself with `EtcdCredentials` (`nodemanager.etcd_settings`): a CA and a client
certificate, or a user and password (etcd's simple or JWT token, asked for at `EtcdClient.open`
and again whenever etcd says it is no longer valid: etcd forgets simple tokens when it restarts).

Not here: what the calls are for (`nodemanager.etcd`), the key layout (`nodemanager.keys`), the
endpoints and credentials as parsed from flags (`nodemanager.etcd_settings`).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

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
from etcd3aio._protobuf import WatchCreateRequest, WatchRequest, WatchStub
from etcd3aio.auth import AuthService
from etcd3aio.connections import ConnectionManager
from etcd3aio.kv import KVService, SortOrder, SortTarget
from etcd3aio.lease import LeaseService

from nodemanager.etcd_settings import EtcdCredentials, split_endpoints
from ramster.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InternalError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RamsterError,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    shown,
)
from ramster.wire.tls import TLS

T = TypeVar("T")

_STATUS: dict[grpc.StatusCode, type[RamsterError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,  # "requested lease not found"
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,  # "database space exceeded"
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,  # "invalid auth token"
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

_AUTHENTICATION_FAILED = {
    "etcdserver: user name is empty",  # no certificate, user or token, and auth is on
    "etcdserver: authentication failed, invalid user ID or password",
}
"""Details with which etcd answers INVALID_ARGUMENT when it means UNAUTHENTICATED."""

_DELETE = 1  # mvccpb.Event.EventType.DELETE
_CLAIM_ATTEMPTS = 100


def _channel_credentials(credentials: EtcdCredentials) -> grpc.ChannelCredentials:
    """Trust only the CA; present the client certificate if there is one."""
    assert credentials.ca is not None, "checked by EtcdClient: https endpoints need a CA"
    if credentials.cert is None or credentials.key is None:
        return grpc.ssl_channel_credentials(root_certificates=_read("ca", credentials.ca))
    ca, cert, key = TLS(credentials.ca, credentials.cert, credentials.key).material()
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )


def _read(field: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise InvalidArgument(f"etcd {field} {str(path)!r} is invalid: {error.strerror}") from None


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """One watch response: `events` are (revision, key, value or None for a delete)."""

    created: bool
    history_lost: bool  # etcd compacted the revision asked for, or cancelled the watch
    revision: int
    events: tuple[tuple[int, str, bytes | None], ...]


class EtcdClient:
    """A channel to etcd at `endpoints` (as the user wrote them: they name etcd in errors) and
    the calls membership makes over it, each bounded by `timeout` seconds, showing etcd
    `credentials` (none: etcd without TLS or authentication). `open` before use."""

    def __init__(
        self, endpoints: str, timeout: float, credentials: EtcdCredentials | None = None
    ) -> None:
        self.endpoints = endpoints
        self.timeout = timeout
        self.credentials = credentials or EtcdCredentials()
        self._tls, self._addresses = split_endpoints(endpoints)
        if self._tls and self.credentials.ca is None:
            raise InvalidArgument(
                f"etcd endpoints {endpoints!r} are https: give etcd ca, the CA of their certificate"
            )
        if not self._tls and self.credentials.ca is not None:
            raise InvalidArgument(
                f"etcd ca is given but the etcd endpoints {endpoints!r} are not https"
            )
        self._channel: grpc.aio.Channel | None = None
        self._token: str | None = None  # user and password: etcd's token for them, once asked
        self.revision = 0
        """The newest revision of the store any answer has carried (renewals included)."""

    async def open(self) -> None:
        manager = ConnectionManager(self._addresses)
        # gRPC's default reconnect backoff grows to 120 s: after a long outage a node would not
        # notice etcd back for minutes. Bound it like every other retry here (0.1 s to 2 s).
        manager.grpc_options += [
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 2000),
        ]
        if len(self._addresses) == 1:
            # One endpoint: gRPC's default resolver, so a DNS name works (etcd3aio's ``ipv4:``
            # target takes IP addresses only) and TLS checks etcd's certificate against it.
            manager.target = self._addresses[0]
        if self._tls:
            self._channel = grpc.aio.secure_channel(
                manager.target, _channel_credentials(self.credentials), manager.grpc_options
            )
        else:
            self._channel = manager.get_channel()
        self._kv = KVService(self._channel, max_attempts=2)
        self._lease = LeaseService(self._channel, max_attempts=2)
        self._watch = WatchStub(self._channel)
        self._auth = AuthService(self._channel, max_attempts=2)

    async def _authenticate(self) -> None:
        """With a user and password and no valid token: ask etcd for one, and send it with every
        call from now on."""
        user, password = self.credentials.user, self.credentials.password
        if user is None or password is None or self._token is not None:
            return
        try:
            answer = await self._auth.authenticate(user, password, timeout=self.timeout)
        except (EtcdError, grpc.aio.AioRpcError, TimeoutError) as error:
            raise self._translate(error, f"authenticating as {user!r}") from error
        self._token = str(answer.token)
        for service in (self._kv, self._lease):
            service.set_token(self._token)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(None)
            self._channel = None

    async def _call(self, doing: str, call: Awaitable[T]) -> T:
        """`call` once authenticated (the token is read when it starts), its errors translated.
        A token etcd no longer knows (it restarted) is dropped: the next call asks for another."""
        try:
            await self._authenticate()
        except BaseException:
            if inspect.iscoroutine(call):
                call.close()  # never started: no "coroutine was never awaited" warning
            raise
        try:
            return await call
        except (EtcdError, grpc.aio.AioRpcError, TimeoutError) as error:
            if self._status(error)[0] == grpc.StatusCode.UNAUTHENTICATED:
                self._token = None
            raise self._translate(error, doing) from error

    @staticmethod
    def _status(error: Exception) -> tuple[grpc.StatusCode, str]:
        """The status etcd (or the library, for etcd) answered with, and its detail."""
        cause = error if isinstance(error, grpc.aio.AioRpcError) else error.__cause__
        if isinstance(cause, grpc.aio.AioRpcError):
            return cause.code(), cause.details() or ""
        if isinstance(error, TimeoutError):
            return grpc.StatusCode.DEADLINE_EXCEEDED, ""
        return _LIBRARY.get(type(error), grpc.StatusCode.UNKNOWN), str(error)

    def _translate(self, error: Exception, doing: str) -> RamsterError:
        code, detail = self._status(error)
        kind = _STATUS.get(code, InternalError)
        if detail in _AUTHENTICATION_FAILED:
            kind = Unauthenticated
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
        return self._seen(response.header.revision), entries

    async def created_order(self, prefix: str) -> list[str]:
        """The keys under `prefix`, in the order they were created (etcd's create revision,
        not the wall clock of whoever wrote them)."""
        response = await self._call(
            f"reading {prefix}",
            self._kv.get(
                prefix,
                prefix_range_end(prefix),
                keys_only=True,
                sort_order=SortOrder.ASCEND,
                sort_target=SortTarget.CREATE,
                timeout=self.timeout,
            ),
        )
        return [kv.key.decode() for kv in response.kvs]

    async def delete(self, keys: list[str]) -> None:
        """Delete `keys` (absent ones are no error)."""
        for key in keys:
            response = await self._call(
                f"deleting {key}", self._kv.delete(key, timeout=self.timeout)
            )
            self._seen(response.header.revision)

    async def delete_prefix(self, prefix: str) -> None:
        """Delete every key under `prefix`, in one call."""
        response = await self._call(
            f"deleting {prefix}",
            self._kv.delete(prefix, prefix_range_end(prefix), timeout=self.timeout),
        )
        self._seen(response.header.revision)

    async def put(self, key: str, value: str, lease: int = 0) -> None:
        response = await self._call(
            f"writing {key}", self._kv.put(key, value, lease=lease, timeout=self.timeout)
        )
        self._seen(response.header.revision)

    async def compact(self, revision: int) -> bool:
        """Drop the history before `revision` (etcd's whole store, not one prefix: compaction is
        cluster-wide). False if it was compacted that far already (by another node)."""
        await self._authenticate()
        try:
            await self._kv.compact(revision, timeout=self.timeout, max_attempts=1)
        except (EtcdError, grpc.aio.AioRpcError, TimeoutError) as error:
            if self._status(error)[0] == grpc.StatusCode.OUT_OF_RANGE:
                return False  # "required revision has been compacted"
            raise self._translate(error, f"compacting before revision {revision}") from error
        return True

    def _seen(self, revision: int) -> int:
        self.revision = max(self.revision, int(revision))
        return int(revision)

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

    async def retire_name(
        self,
        name_key: str,
        node_key: Callable[[int], str],
        notice: Callable[[int], str],
        name: str,
        ttl: int,
    ) -> tuple[int, bytes | None] | None:
        """Delete the number claim at `name_key` and put `name` at `notice(number)` under a lease
        of `ttl` seconds, in one transaction that holds only while no `node_key(number)` entry
        exists. None if nothing claims the name; (number, the node's entry) if it is up
        (nothing changed); (number, None) once done."""
        while True:
            found = await self._call(
                f"reading {name_key}", self._kv.get(name_key, timeout=self.timeout)
            )
            if not found.kvs:
                return None
            number = _decimal(name_key, found.kvs[0].value)
            lease = await self.grant(ttl)
            response = await self._call(
                f"retiring {name_key}",
                self._kv.txn(
                    compare=[
                        KVService.txn_compare_value(name_key, bytes(found.kvs[0].value)),
                        KVService.txn_compare_create_revision(node_key(number), 0),
                    ],
                    success=[
                        KVService.txn_op_delete(name_key),
                        KVService.txn_op_put(notice(number), name, lease=lease),
                    ],
                    failure=[KVService.txn_op_get(node_key(number))],
                    timeout=self.timeout,
                ),
            )
            if response.succeeded:
                return number, None
            await self.revoke(lease, self.timeout)
            if entries := response.responses[0].response_range.kvs:
                return number, bytes(entries[0].value)
            # The claim changed between the read and the transaction: read it again.

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
                    self._seen(response.header.revision)
                    return int(response.TTL)
            finally:
                call.cancel()
        raise Unavailable(f"etcd at {self.endpoints} ended the renewal of lease {lease:x}")

    async def revoke(self, lease: int, timeout: float) -> None:
        await self._call(
            f"revoking lease {lease:x}",
            self._lease.revoke(lease, timeout=timeout, max_attempts=1),
        )

    async def watch(self, prefix: str, start_revision: int) -> AsyncGenerator[WatchBatch, None]:
        """Every change under `prefix` from `start_revision` on, until the stream fails.

        Not etcd3aio's watch: after an error it re-creates its stream from the revision in the last
        response header, which can skip events (a stream created at revision R answers R before
        the events up to R arrive), and each attempt leaves gRPC's request task pending forever.
        Here a failed stream ends the watch; the caller resumes from the last event it applied.
        """
        done = asyncio.Event()

        async def requests() -> AsyncGenerator[Any, None]:
            create = WatchCreateRequest(
                key=prefix.encode(),
                range_end=prefix_range_end(prefix),
                start_revision=start_revision,
            )
            yield WatchRequest(create_request=create)
            await done.wait()  # keep the stream open; end (and let gRPC's writer task end) after

        await self._authenticate()
        metadata = (("token", self._token),) if self._token else None
        call = self._watch.Watch(requests(), metadata=metadata)
        responses = aiter(call)
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
                yield WatchBatch(
                    created=bool(response.created),
                    history_lost=response.compact_revision > 0 or bool(response.canceled),
                    revision=int(response.header.revision),
                    events=events,
                )
        finally:
            done.set()
            call.cancel()


def _decimal(key: str, value: bytes) -> int:
    if not value.isdigit():
        raise FailedPrecondition(f"{key} holds {shown(value)}: expected a node number")
    return int(value)
