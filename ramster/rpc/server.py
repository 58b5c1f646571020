"""`NodeServer`: the node's grpc.aio servers — one per listener group, each with its services,
health and reflection — and the addresses each listens on.

A node serves applications and operators (Tmem, Admin) on its ``--listen`` addresses; its peers
(Peer) there too, or, with ``--peer-listen``, on a listener of their own; and Admin once more on
its admin socket (``--admin-listen``), where every caller may change settings. gRPC cannot tell a
handler which port a call came in on, so each group is a server of its own (`Listener`). Each is
bound to its addresses before it serves (TCP ones with TLS if the node has it, unix socket files
as `ramster.rpc.listeners` claims them), reports SERVING once the node has joined its cluster,
and at exit reports shutting down, lets in-flight calls finish within a grace period and removes
its socket files. Every server keeps within the node's `ServerLimits` on connections and
sources (`ramster.rpc.connections`). Not here: what the services do (`tmem_service`,
`admin_service`, `peer_service`), who may call them (`access`), when the node starts and stops
(`ramster.node`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ramster.config import ServerLimits, unix_path
from ramster.rpc import admin_service, peer_service, tmem_service
from ramster.rpc.connections import SourceGuard, raise_file_limit, server_options
from ramster.rpc.listeners import SERVER_OPTIONS, bind_address
from ramster.socket_files import SocketFile
from ramster.wire.limits import MESSAGE_SIZE_OPTIONS, split_host_port
from ramster.wire.tls import TLS

log = logging.getLogger("ramster.node")

AsyncHealthServicer: Any = health.aio.HealthServicer  # type: ignore[attr-defined]
"""The asyncio health servicer; grpc-stubs lacks `health.aio`."""


SERVICES = (tmem_service.SERVICE, admin_service.SERVICE, peer_service.SERVICE)


@dataclass(frozen=True, slots=True)
class Listener:
    """One group of the node's addresses and what it serves there: `handlers` of the services
    `services` (for health and reflection), on `addresses` (the first is the one the group is
    reached at), unix socket files with permission bits `socket_mode`."""

    name: str
    handlers: Sequence[grpc.GenericRpcHandler[Any, Any]]
    services: Sequence[str]
    addresses: Sequence[str]
    socket_mode: int


class _Served:
    """The grpc.aio server of one `Listener`."""

    def __init__(self, listener: Listener, options: Sequence[tuple[str, Any]]) -> None:
        self.listener = listener
        self.server = grpc.aio.server(options=[*MESSAGE_SIZE_OPTIONS, *SERVER_OPTIONS, *options])
        self.server.add_generic_rpc_handlers(tuple(listener.handlers))
        self.health = AsyncHealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (*listener.services, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
        )


class NodeServer:
    """The gRPC servers of one node, one per `Listener` (not yet bound nor started), within
    `limits`."""

    def __init__(
        self,
        listeners: Sequence[Listener],
        tls: TLS | None = None,
        limits: ServerLimits | None = None,
    ) -> None:
        limits = limits or ServerLimits()
        options = server_options(limits, raise_file_limit())
        self._served = [_Served(listener, options) for listener in listeners]
        self._guard = SourceGuard(limits.max_connections_per_source, limits.guard_interval)
        self._credentials = None if tls is None else tls.server_credentials()
        self._socket_files: list[SocketFile] = []  # removed at stop, if still this node's
        self._started = False

    def __repr__(self) -> str:
        state = "started" if self._started else "new"
        return f"<NodeServer {state} socket_files={[f.path for f in self._socket_files]}>"

    @property
    def started(self) -> bool:
        return self._started

    def bind(self) -> dict[str, str]:
        """Bind every listener's addresses (not yet serving); by listener name, the address it
        is reached at: its first, with the port bound if it asked for any."""
        reached = {}
        for served in self._served:
            first, *others = served.listener.addresses
            port = self._bind(served, first)
            for address in others:
                self._bind(served, address)
            if unix_path(first) is not None:
                reached[served.listener.name] = first
            else:
                host, _ = split_host_port(first, "listen")
                reached[served.listener.name] = (
                    f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                )
        return reached

    def _bind(self, served: _Served, address: str) -> int:
        """Bind `address` (not yet serving); the port bound, 0 for a unix socket."""
        port, socket_file = bind_address(
            served.server, address, served.listener.socket_mode, self._credentials
        )
        if socket_file is not None:
            self._socket_files.append(socket_file)
        else:
            self._guard.ports.add(port)
        return port

    async def start(self) -> None:
        """Take calls; the services are reported SERVING only once `serving` is called."""
        for served in self._served:
            await served.server.start()
        self._guard.start()
        self._started = True

    async def serving(self) -> None:
        """Report every service SERVING: the node has joined its cluster."""
        for served in self._served:
            await served.health.set("", health_pb2.HealthCheckResponse.SERVING)
            for name in served.listener.services:
                await served.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def shutting_down(self) -> None:
        """Report every service NOT_SERVING: the node is stopping."""
        for served in self._served:
            await served.health.enter_graceful_shutdown()

    async def stop(self, grace: float) -> None:
        """Refuse new calls, let in-flight ones finish within `grace` seconds, and remove the
        socket files that are still this server's."""
        await self._guard.stop()
        if self._started:
            await asyncio.gather(*(served.server.stop(grace) for served in self._served))
        for socket_file in self._socket_files:
            try:
                socket_file.remove()
            except OSError as error:  # stopping goes on: the next node replaces a stale file
                log.warning("socket file %s not removed: %s", socket_file.path, error.strerror)
