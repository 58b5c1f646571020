"""Lazy attachment of a pure frontend to a node's backend, following the node's state stream.

A watcher thread follows `Admin/WatchState`, reconnecting with backoff and full jitter (a wait
drawn below 0.1 s doubling to 2 s, `Backoff`).
While the node reports its zcache backend loaded, the frontend has a shim registered for that
backend, named by (epoch, backend_generation); when the stream breaks or the backend goes away
the shim is unregistered. A backend not seen before gets a new shim (the frontend replays its
registrations onto fresh pools); the same backend back after a broken stream gets its shim
again, so its pages are still found. One lock serialises frontend calls and (un)registration.

Through `BackendGuard` a call that finds the backend gone (node down, flag off, pool lost) is a
failed put or a missed get, never an error and never stale data; except a get of a persistent
page that could not be reached (UNAVAILABLE, DEADLINE_EXCEEDED): that page is not gone (a node
or the peer holding it did not answer), so the retriable error goes to the caller. A pool found
gone from a backend still registered (NOT_FOUND: the node ended the client's session while it was
away, `client_lease`, `client_grace`) retires the shim after the call: the frontend gets a new
one, as for a new backend, and what is left of the old pools is given back. Its pool ids may
name newer pools by then; the client names each pool's uid in every call
(`ramster.client._async`), so a call through the old shim is NOT_FOUND, never another pool's
page. Not here:
the frontends' rules (`ramster.frontends`), the kernel-named classes (`ramster.client._frontends`).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import uuid
from collections.abc import Callable
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar

from ramster.client._backoff import Backoff
from ramster.client._sync import SyncClient
from ramster.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    NotFound,
    RamsterError,
    Unavailable,
)
from ramster.frontends.ops import TmemApi
from ramster.state import NodeState
from ramster.tmem.keys import OidLike
from ramster.wire.tls import TLS

log = logging.getLogger("ramster.client")

BACKOFF_MIN = 0.1
BACKOFF_MAX = 2.0
"""The watcher's reconnect waits: drawn below 0.1 s, then below twice that, up to below 2 s."""
BACKEND_LOST = (Unavailable, DeadlineExceeded, FailedPrecondition, NotFound)
"""What a tmem call raises when the backend it was made for is unreachable or gone."""

BackendKey = tuple[str, int]
"""(epoch, backend_generation): one lifetime of one node's backend; its pools die with it."""

P = ParamSpec("P")
R = TypeVar("R")


def backend_of(state: NodeState | None) -> BackendKey | None:
    """The backend to be registered with, given the node's state (None: no stream)."""
    if state is None or not state.zcache or state.shutting_down:
        return None
    return state.epoch, state.backend_generation


class BackendGuard:
    """The `TmemApi` one shim uses: calls go to `api`, but when the backend is lost a put or
    flush reports False and a get misses instead of raising (a get of a persistent page that
    could not be reached raises). Remembers the pools it created, so `release` can give them
    back."""

    def __init__(self, api: TmemApi, key: BackendKey) -> None:
        self._api = api
        self.key = key
        self.pools: set[int] = set()
        self._persistent: set[int] = set()
        self._lost = 0
        self.gone = False
        """A pool of this guard is gone from its backend: the shim is to be retired."""

    def __repr__(self) -> str:
        epoch, generation = self.key
        gone = " gone" if self.gone else ""
        return (
            f"<BackendGuard {epoch}/{generation} pools={sorted(self.pools)} "
            f"lost={self._lost}{gone}>"
        )

    def new_pool(
        self,
        persistent: bool = False,
        shared_uuid: uuid.UUID | None = None,
        page_size: int = 4096,
        codec: str | None = None,
    ) -> int:
        pool = self._api.new_pool(persistent, shared_uuid, page_size, codec)
        if pool in self.pools:  # the node freed the id behind this guard's back
            self.gone = True
        self.pools.add(pool)
        if persistent:
            self._persistent.add(pool)
        return pool

    def put(self, pool: int, oid: OidLike, index: int, data: bytes) -> bool:
        return self._guard(False, self._api.put, pool, oid, index, data)

    def get(self, pool: int, oid: OidLike, index: int, free: bool | None = None) -> bytes | None:
        try:
            return self._api.get(pool, oid, index, free)
        except BACKEND_LOST as error:
            if error.retriable and pool in self._persistent:
                raise  # not a miss: the page may well be there
            self._note_lost(error)
            return None

    def flush_page(self, pool: int, oid: OidLike, index: int) -> bool:
        return self._guard(False, self._api.flush_page, pool, oid, index)

    def flush_object(self, pool: int, oid: OidLike) -> bool:
        return self._guard(False, self._api.flush_object, pool, oid)

    def destroy_pool(self, pool: int) -> None:
        self.pools.discard(pool)
        self._persistent.discard(pool)
        self._guard(None, self._api.destroy_pool, pool)

    def release(self) -> None:
        """Destroy every pool this guard created (best effort: the backend may be gone)."""
        for pool in sorted(self.pools):
            self.destroy_pool(pool)

    def _guard(self, lost: R, call: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return call(*args, **kwargs)
        except BACKEND_LOST as error:
            self._note_lost(error)
            return lost

    def _note_lost(self, error: RamsterError) -> None:
        if isinstance(error, NotFound):
            self.gone = True
        self._lost += 1
        # Once per backend lifetime at warning level: a dead node fails every call.
        level = logging.WARNING if self._lost == 1 else logging.DEBUG
        log.log(level, "backend %s/%s lost: %s", *self.key, error.message)


class _Pure(Protocol):
    def unregister_ops(self) -> None: ...


F = TypeVar("F", bound=_Pure)
O = TypeVar("O")  # noqa: E741 - the ops type, as in the kernel's *_ops


class Attached(Generic[F, O]):
    """`frontend` attached to the node at `target` through a `SyncClient` of its own."""

    def __init__(
        self,
        frontend: F,
        target: str,
        client_name: str | None,
        timeout: float,
        tls: TLS | None,
        token: str | os.PathLike[str] | None = None,
    ) -> None:
        self._frontend = frontend
        self._client = SyncClient(target, client_name, timeout, tls=tls, token=token)
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._closing = threading.Event()
        self._attachment: tuple[BackendGuard, O] | None = None
        self._registrations = 0
        self._backoff = Backoff(BACKOFF_MIN, BACKOFF_MAX)
        self._watcher = threading.Thread(
            target=self._watch, name=f"ramster-watch-{self._client.config.client_name}", daemon=True
        )
        self._watcher.start()

    def __repr__(self) -> str:
        backend = self.backend
        where = f"{backend[0]}/{backend[1]}" if backend is not None else "-"
        return (
            f"<{type(self).__name__} {self._client.config.target} backend={where} "
            f"registrations={self._registrations} frontend={self._frontend!r}>"
        )

    @property
    def backend(self) -> BackendKey | None:
        """(epoch, backend_generation) of the node's backend registered now, or None."""
        attachment = self._attachment
        return attachment[0].key if attachment is not None and self._ready.is_set() else None

    def wait_ready(self, timeout: float | None = None) -> bool:
        """True once a backend is registered (waiting up to `timeout` seconds for one)."""
        return self._ready.wait(timeout)

    def close(self) -> None:
        """Unregister, give the node's pools back, stop the watcher and the client."""
        self._closing.set()
        with self._lock:
            if self._ready.is_set() and self._attachment is not None:
                self._attachment[0].release()
            self._detach()
        self._client.close()
        self._watcher.join()

    def _new_ops(self, api: BackendGuard) -> O:
        raise NotImplementedError

    def _register(self, ops: O) -> None:
        raise NotImplementedError

    def _reattach(self, guard: BackendGuard, ops: O) -> None:
        """Register `ops` again after a broken stream, its backend unchanged."""
        self._register(ops)

    def _watch(self) -> None:
        while not self._closing.is_set():
            try:
                for state in self._client.watch_state():
                    self._follow(backend_of(state))
                    self._backoff.reset()
            except RamsterError as error:
                log.debug("%r: state stream: %s", self, error.message)
            self._follow(None)
            if self._closing.wait(self._backoff.next()):
                return

    def _follow(self, key: BackendKey | None) -> None:
        with self._lock:
            attachment = self._attachment
            if attachment is None or attachment[0].key != key:
                attachment = None  # a backend not seen before, or none
            elif self._ready.is_set():
                return
            self._detach()
            if key is None or self._closing.is_set():
                return  # the attachment stays: the same backend may come back
            if attachment is not None:
                self._reattach(*attachment)
                self._registered()
            else:
                self._attach_new(key)

    def _attach_new(self, key: BackendKey) -> None:
        """Register a new shim for backend `key`: the frontend replays onto fresh pools."""
        guard = BackendGuard(self._client, key)
        ops = self._new_ops(guard)
        self._attachment = guard, ops
        self._register(ops)
        self._registered()

    def _registered(self) -> None:
        self._registrations += 1
        self._ready.set()
        log.info("%r: registered", self)

    def _renew_if_gone(self) -> None:
        """After a frontend call: if it found a pool of the registered shim gone, retire the
        shim (its pool ids may name newer pools now), give back what is left of its pools and
        register a new one on the same backend."""
        attachment = self._attachment
        if attachment is None or not attachment[0].gone or not self._ready.is_set():
            return
        guard = attachment[0]
        log.warning("%r: pools of this client are gone from the node: registering anew", self)
        self._detach()
        guard.release()
        self._attach_new(guard.key)

    def _detach(self) -> None:
        if self._ready.is_set():
            self._frontend.unregister_ops()
            self._ready.clear()
            log.info("%r: unregistered", self)


def locked(method: Callable[Concatenate[F, P], R]) -> Callable[Concatenate[Attached[F, Any], P], R]:
    """`method` of the pure frontend, called under the attachment's lock."""

    @functools.wraps(method)
    def call(self: Attached[F, Any], /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._lock:
            try:
                return method(self._frontend, *args, **kwargs)
            finally:
                self._renew_if_gone()

    return call
