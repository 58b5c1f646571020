"""`NodeServer`: the node's grpc.aio server — its services, health and reflection, and the
addresses it listens on.

It is built with the node's service handlers (`SERVICES` names them for health and reflection),
bound to every ``--listen`` address before it serves (unix socket files as
`ramster.rpc.listeners` claims them), within the node's `ServerLimits` on connections and sources
(`ramster.rpc.connections`), reports SERVING once the node has joined its cluster, and
at exit reports shutting down, lets in-flight calls finish within a grace period and removes its
socket files. Not here: what the services do (`tmem_service`, `admin_service`, `peer_service`),
when the node starts and stops (`ramster.node`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ramster.config import ServerLimits, unix_path
from ramster.rpc import admin_service, peer_service, tmem_service
from ramster.rpc.connections import SourceGuard, raise_file_limit, server_options
from ramster.rpc.listeners import SERVER_OPTIONS, SocketFile, bind_address
from ramster.wire.limits import MESSAGE_SIZE_OPTIONS, split_host_port

log = logging.getLogger("ramster.node")

AsyncHealthServicer: Any = health.aio.HealthServicer  # type: ignore[attr-defined]
"""The asyncio health servicer; grpc-stubs lacks `health.aio`."""


SERVICES = (tmem_service.SERVICE, admin_service.SERVICE, peer_service.SERVICE)


class NodeServer:
    """The gRPC server of one node, serving `handlers` (not yet bound nor started)."""

    def __init__(
        self,
        handlers: Sequence[grpc.GenericRpcHandler[Any, Any]],
        socket_mode: int,
        limits: ServerLimits,
    ) -> None:
        limit_options = server_options(limits, raise_file_limit())
        self._server = grpc.aio.server(
            options=[*MESSAGE_SIZE_OPTIONS, *SERVER_OPTIONS, *limit_options]
        )
        self._guard = SourceGuard(limits.max_connections_per_source, limits.guard_interval)
        self._server.add_generic_rpc_handlers(tuple(handlers))
        self._health = AsyncHealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            (*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server
        )
        self._socket_mode = socket_mode
        self._socket_files: list[SocketFile] = []  # removed at stop, if still this node's
        self._started = False

    def __repr__(self) -> str:
        state = "started" if self._started else "new"
        return f"<NodeServer {state} socket_files={[f.path for f in self._socket_files]}>"

    @property
    def started(self) -> bool:
        return self._started

    def bind(self, listen: str, extra_listen: Sequence[str]) -> str:
        """Bind `listen` and every `extra_listen` address (not yet serving); the address the
        node is reached at through `listen`, with the port bound if it asked for any."""
        port = self._bind(listen)
        for address in extra_listen:
            self._bind(address)
        if unix_path(listen) is not None:
            return listen
        host, _ = split_host_port(listen, "listen")
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def _bind(self, address: str) -> int:
        """Bind `address` (not yet serving); the port bound, 0 for a unix socket."""
        port, socket_file = bind_address(self._server, address, self._socket_mode)
        if socket_file is not None:
            self._socket_files.append(socket_file)
        else:
            self._guard.ports.add(port)
        return port

    async def start(self) -> None:
        """Take calls; the services are reported SERVING only once `serving` is called."""
        await self._server.start()
        self._guard.start()
        self._started = True

    async def serving(self) -> None:
        """Report every service SERVING: the node has joined its cluster."""
        await self._health.set("", health_pb2.HealthCheckResponse.SERVING)
        for name in SERVICES:
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def shutting_down(self) -> None:
        """Report every service NOT_SERVING: the node is stopping."""
        await self._health.enter_graceful_shutdown()

    async def stop(self, grace: float) -> None:
        """Refuse new calls, let in-flight ones finish within `grace` seconds, and remove the
        socket files that are still this server's."""
        await self._guard.stop()
        if self._started:
            await self._server.stop(grace)
        for socket_file in self._socket_files:
            try:
                socket_file.remove()
            except OSError as error:  # stopping goes on: the next node replaces a stale file
                log.warning("socket file %s not removed: %s", socket_file.path, error.strerror)
