"""Who may call what: every call of a service is authenticated and authorized before its handler
runs, and the handler reads who called with `current_caller`.

`guarded` wraps a service's handler: for each call it asks `Callers` who the caller is
(certificate, token, or the local identity), refuses UNAUTHENTICATED if that proves nothing and
PERMISSION_DENIED if the service's `Rule` does not let that identity make that call, and
otherwise runs the handler with the caller set for it (a context variable: each grpc.aio call
runs in a task of its own). Every call, refused or not, is timed and its status counted there
(`ramster.rpc.call_metrics`). The rules of the node's services are here too, in one place:

- Tmem (applications' pages): client, admin and local identities; a node certificate proves a
  peer, not an application.
- Admin: reads (stats, params, the state stream) for every identity, as frontends and the
  client library watch the node's state and counters show no one's pages or names; changes
  (param set, quota set and unset, drain, undrain, forget-node) and the reads that name client
  identities (quotas, the usage of each identity: one client must not learn who else stores
  here) only for admin identities, or for anyone over the node's admin socket
  (``--admin-listen``, mode 0600: the node's user and root).
- Peer: node identities only.

These hold on a node with TLS, where callers can prove a role. A node without TLS serves only
loopback and unix sockets (or, with ``--insecure``, the network it says it trusts), nobody there
can prove anything, and every caller is the local identity: it trusts each one with every
service, as before (`Rules.of_node`).

Not here: who a caller is (`ramster.rpc.caller`), which pools it owns (`ramster.rpc.tmem_service`).
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any, cast

import grpc

from ramster.errors import PermissionDenied, RamsterError
from ramster.rpc.binding import refuse
from ramster.rpc.call_metrics import CallMetrics, MethodMetrics
from ramster.rpc.caller import Callers
from ramster.trust.identity import OWNER_ROLES, Identity, Role


@dataclass(frozen=True, slots=True)
class Caller:
    """Who makes the call being served, and over which `listener` (e.g. "admin socket")."""

    identity: Identity
    listener: str

    def __str__(self) -> str:
        return f"{self.identity!r} over the {self.listener}"


_CALLER: contextvars.ContextVar[Caller] = contextvars.ContextVar("ramster_caller")


def current_caller() -> Caller:
    """The caller of the call being served (set by `guarded`)."""
    return _CALLER.get()


def set_caller(caller: Caller) -> None:
    """Make `caller` the caller of the call being served in this context (`guarded` does, for
    each call; a handler called in process, as in tests, needs one too)."""
    _CALLER.set(caller)


Rule = Callable[[str, Identity], None]
"""Raises `PermissionDenied` if the identity may not call the method (its short name)."""


def roles(allowed: Collection[Role], service: str) -> Rule:
    """Only identities of the `allowed` roles may call `service`."""
    names = ", ".join(role.value for role in allowed)

    def rule(method: str, identity: Identity) -> None:
        if identity.role not in allowed:
            raise PermissionDenied(
                f"{service}/{method} is for {names} identities: the caller is {identity!r} "
                f"(role {identity.role.value})"
            )

    return rule


def anyone(method: str, identity: Identity) -> None:
    """Every identity may call: on the admin socket, which only the node's own user and root
    reach, and on a node without TLS (`Rules.of_node`)."""


TMEM = roles(OWNER_ROLES, "Tmem")
PEER = roles((Role.NODE,), "Peer")
ADMIN_READS = frozenset({"GetStats", "GetParams", "WatchState", "ListExports"})
"""The Admin methods every identity may call: they change nothing and name no client identity
(ListExports shows each identity its own exports)."""
_ADMIN_CHANGES = roles((Role.ADMIN,), "Admin")


def admin(method: str, identity: Identity) -> None:
    """`ADMIN_READS` for every identity; the rest for admin identities only."""
    if method not in ADMIN_READS:
        _ADMIN_CHANGES(method, identity)


@dataclass(frozen=True, slots=True)
class Rules:
    """The rule of each service of a node."""

    tmem: Rule
    admin: Rule
    peer: Rule

    @classmethod
    def of_node(cls, proven: bool) -> Rules:
        """The rules of a node whose callers can prove who they are (`proven`: it has TLS, so
        certificates and tokens), else of one where every caller is the local identity: a node
        without TLS serves only loopback and unix sockets (or, with ``--insecure``, whoever
        reaches it), and nobody there can prove a role, so it trusts every caller with every
        service, as it says in its log."""
        if proven:
            return cls(TMEM, admin, PEER)
        return cls(anyone, anyone, anyone)


def guarded(
    handler: grpc.GenericRpcHandler[Any, Any],
    callers: Callers,
    rule: Rule,
    listener: str,
    calls: CallMetrics,
) -> grpc.GenericRpcHandler[Any, Any]:
    """`handler` (one service) with each call authenticated by `callers`, authorized by `rule`
    and recorded in `calls`; `listener` names where it is served, in `Caller`."""
    return _Guarded(handler, callers, rule, listener, calls)


class _Guarded(grpc.GenericRpcHandler):  # type: ignore[type-arg]
    def __init__(
        self,
        handler: grpc.GenericRpcHandler[Any, Any],
        callers: Callers,
        rule: Rule,
        listener: str,
        calls: CallMetrics,
    ) -> None:
        self._handler = handler
        self._callers = callers
        self._rule = rule
        self._listener = listener
        self._calls = calls

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        served = self._handler.service(handler_call_details)
        if served is None:
            return None
        path = handler_call_details.method
        method = path.rsplit("/", 1)[-1]
        metrics = self._calls.method(path)
        if served.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, metrics, served.unary_unary),
                request_deserializer=served.request_deserializer,
                response_serializer=served.response_serializer,
            )
        assert served.unary_stream is not None, "the node's services are unary or server-stream"
        # grpc-stubs types a stream behavior as a sync iterator; ours are async generators.
        stream = cast(Callable[[Any, Any], AsyncIterator[Any]], served.unary_stream)
        return grpc.unary_stream_rpc_method_handler(
            self._stream(method, metrics, stream),
            request_deserializer=served.request_deserializer,
            response_serializer=served.response_serializer,
        )

    async def _admit(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        """Set the caller of this call, or end it with the status of the refusal."""
        try:
            identity = self._callers.identity(context)
            self._rule(method, identity)
        except RamsterError as error:
            await refuse(context, error)
        set_caller(Caller(identity, self._listener))

    def _unary(
        self, method: str, metrics: MethodMetrics, behavior: Callable[[Any, Any], Awaitable[Any]]
    ) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]:
        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            try:
                await self._admit(method, context)
                answer = await behavior(request, context)
            except BaseException as error:
                metrics.record(_ended(error, context), time.perf_counter() - started)
                raise
            metrics.record(grpc.StatusCode.OK, time.perf_counter() - started)
            return answer

        return call

    def _stream(
        self,
        method: str,
        metrics: MethodMetrics,
        behavior: Callable[[Any, Any], AsyncIterator[Any]],
    ) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]:
        async def call(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            started = time.perf_counter()
            try:
                await self._admit(method, context)
                async for response in behavior(request, context):
                    yield response
            except BaseException as error:
                metrics.record(_ended(error, context), time.perf_counter() - started)
                raise
            metrics.record(grpc.StatusCode.OK, time.perf_counter() - started)

        return call


def _ended(error: BaseException, context: grpc.aio.ServicerContext[Any, Any]) -> grpc.StatusCode:
    """The status a call that raised `error` ends with: the one it was aborted with (refusals
    are translated to statuses by `ramster.rpc.binding.refuse`), CANCELLED if the caller
    went away or its deadline passed, else UNKNOWN (as gRPC answers an escaped exception)."""
    code = context.code()
    if code is not None:
        return code
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN
