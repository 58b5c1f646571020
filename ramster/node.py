"""The composition root of `ramster node`: config in, a serving node out. No policy lives here.

It builds the backend, the services, gRPC health and reflection, the metrics endpoint, joins the
cluster (clients wait until the node's pages are back from its peers), and runs until SIGTERM or
SIGINT: then it drains (up to `drain_timeout`: peers move their copies off it), reports shutting
down, stops taking calls, lets in-flight ones finish within `grace`, and exits 0.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from nodemanager.etcd import EtcdMembership
from nodemanager.model import MemberInfo, Membership
from nodemanager.static import StaticMembership
from ramster.backend import Backend
from ramster.cluster import ClusterAgent
from ramster.config import NodeConfig, unix_path
from ramster.errors import FailedPrecondition, RamsterError, Unavailable
from ramster.listeners import SERVER_OPTIONS, SocketFile, bind_address
from ramster.metrics import serve_metrics
from ramster.params import ModuleParams
from ramster.remote.policy import RemotifyConfig
from ramster.rpc import admin_service, peer_service, tmem_service
from ramster.rpc.admin_service import AdminService
from ramster.rpc.peer_link import PeerLink
from ramster.rpc.peer_service import PeerService
from ramster.rpc.tmem_service import TmemService
from ramster.state import NodeState, StateFeed
from ramster.wire.limits import MAX_MESSAGE, split_host_port

log = logging.getLogger("ramster.node")

AsyncHealthServicer: Any = health.aio.HealthServicer  # type: ignore[attr-defined]
"""The asyncio health servicer; grpc-stubs lacks `health.aio`."""


SERVICES = (tmem_service.SERVICE, admin_service.SERVICE, peer_service.SERVICE)


class Node:
    """One running node: its backend, services and servers."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        started = time.time_ns() // 1000
        self.backend = Backend(
            config.store,
            config.limits,
            ModuleParams(zcache=config.zcache, ramster=config.ramster),
            first_version=started,
        )
        self.backend.recovering = True  # until the cluster is joined and pages are back
        self.feed = StateFeed(
            NodeState(
                node_name=config.name,
                epoch=new_epoch(started),
                backend_generation=self.backend.generation,
                zcache=self.backend.serving,
                ramster=self.backend.ramster,
            )
        )
        self.tmem_service = TmemService(self.backend)
        self.address = ""
        self.agent: ClusterAgent | None = None
        self._probes: dict[str, PeerLink] = {}
        self._server: grpc.aio.Server | None = None
        self._peer: PeerService | None = None
        self._health = AsyncHealthServicer()
        self._metrics: asyncio.Server | None = None
        self._socket_files: list[SocketFile] = []  # removed at stop, if still this node's
        self._leaving = False  # SIGTERM: draining to exit, not to be undrained

    def __repr__(self) -> str:
        status = self.feed.status
        state = "stopping" if status.shutting_down else ("running" if self._server else "new")
        return f"<Node {self.config.name} {state} {self.address or '-'} {self.backend!r}>"

    def counters(self) -> dict[str, int]:
        status = self.feed.status
        remote = self.agent.remote if self.agent is not None else None
        return {
            **self.backend.counters(),
            **self.tmem_service.counters,
            **(remote.all_counters() if remote is not None else {}),
            "node_number": self.agent.number if self.agent is not None else 0,
            "backend_generation": status.backend_generation,
            "zcache_on": int(status.zcache),
            "ramster_on": int(status.ramster),
        }

    async def start(self) -> None:
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE),
            *SERVER_OPTIONS,
        ]
        server = grpc.aio.server(options=options)
        admin = AdminService(
            self.backend,
            self.feed,
            self.counters,
            self._set_param,
            self.drain,
            self._forget_node,
            self.undrain,
        )
        peer = self._peer = PeerService(
            self.config.cluster, self.config.name, self.backend, self._identity
        )
        server.add_generic_rpc_handlers(
            (self.tmem_service.handler(), admin.handler(), peer.handler())
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        port = self._bind(server, self.config.listen)
        for address in self.config.extra_listen:
            self._bind(server, address)
        if self.config.metrics:  # before serving: a refused port must not leave a half-started node
            host, metrics_port = split_host_port(self.config.metrics, "metrics")
            try:
                self._metrics = await serve_metrics(
                    host, metrics_port, self.counters, self.config.name
                )
            except OSError as error:
                raise FailedPrecondition(
                    f"metrics {self.config.metrics!r} cannot be bound: "
                    f"{os.strerror(error.errno) if error.errno else error}"
                ) from None
        if unix_path(self.config.listen) is not None:
            self.address = self.config.listen
        else:
            host, _ = split_host_port(self.config.listen, "listen")
            self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        await server.start()
        self._server = server
        await self._join_cluster()
        self.backend.recovering = False
        assert self.agent is not None
        await self.agent.publish_state()
        await self._health.set("", health_pb2.HealthCheckResponse.SERVING)
        for name in SERVICES:
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "node %s serving on %s: %r",
            self.config.name,
            ", ".join((self.address, *self.config.extra_listen)),
            self.backend,
        )
        if self.config.ready_file:
            self._write_ready_file(Path(self.config.ready_file))

    def _bind(self, server: grpc.aio.Server, address: str) -> int:
        """Bind `address` (not yet serving); the port bound, 0 for a unix socket."""
        port, socket_file = bind_address(server, address, self.config.socket_mode)
        if socket_file is not None:
            self._socket_files.append(socket_file)
        return port

    def metrics_address(self) -> str | None:
        if self._metrics is None:
            return None
        host, port = self._metrics.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    async def drain(self, timeout: float | None = None) -> int:
        """Stop taking peers' pages and wait up to `timeout` (default: the configured drain
        timeout) seconds for origins to move theirs off this node; the pages left."""
        if self.agent is None or self._peer is None:
            return 0
        timeout = self.config.drain_timeout if timeout is None else timeout
        self._peer.draining = True
        log.info("node %s draining (up to %.1f s)", self.config.name, timeout)
        left = await self.agent.drain(timeout)
        if left:
            log.warning("node %s: %d foreign pages left after draining", self.config.name, left)
        else:
            log.info("node %s drained", self.config.name)
        return left

    async def undrain(self) -> bool:
        """Take peers' pages again and keep this node's own here; whether it was draining.
        A node that is leaving (SIGTERM) stays leaving."""
        if self._leaving:
            raise FailedPrecondition(
                f"node {self.config.name!r} is shutting down: it cannot be undrained"
            )
        if self.agent is None or self._peer is None or not self._peer.draining:
            return False
        self._peer.draining = False
        await self.agent.undrain()
        log.info("node %s undrained: it takes pages of peers again", self.config.name)
        return True

    async def leave(self) -> None:
        """SIGTERM or SIGINT: drain (if `drain_timeout` allows it), then stop; from here on no
        undrain brings the node back."""
        self._leaving = True
        if self.config.drain_timeout > 0:
            await self.drain()
        await self.stop()

    async def stop(self) -> None:
        """Graceful stop: report it, refuse new calls, let in-flight ones finish."""
        log.info("node %s stopping (grace %.1f s)", self.config.name, self.config.grace)
        await self.feed.publish(self.feed.status.but(shutting_down=True))
        await self._health.enter_graceful_shutdown()
        await self.feed.close()
        if self.agent is not None:
            await self.agent.stop()
        for link in self._probes.values():
            await link.close()
        if self._metrics is not None:
            self._metrics.close()
        if self._server is not None:
            await self._server.stop(self.config.grace)
        for socket_file in self._socket_files:
            try:
                socket_file.remove()
            except OSError as error:  # stopping goes on: the next node replaces a stale file
                log.warning("socket file %s not removed: %s", socket_file.path, error.strerror)
        log.info("node %s stopped", self.config.name)

    async def _join_cluster(self) -> None:
        config = self.config
        membership: Membership
        if config.etcd is not None:
            membership = EtcdMembership(config.etcd, config.cluster)
        else:
            membership = StaticMembership(config.node_number, list(config.peers), self._probe)
        me = MemberInfo(
            number=0,
            name=config.name,
            address=config.advertise or self.address,
            epoch=self.feed.status.epoch,
            capacity_bytes=config.store.memory,
            free_bytes=config.store.memory,
            zcache=self.backend.zcache,
            ramster=self.backend.ramster,
        )
        # Known before it has joined: peers asking who this is during recovery (Hello) get the
        # number as soon as it is claimed, not 0.
        agent = self.agent = ClusterAgent(
            self.backend, self.feed, membership, me, RemotifyConfig(), PeerLink
        )
        number = await _with_retries(agent.start, JOIN_TIMEOUT, f"joining cluster {config.cluster}")
        self.tmem_service.remote = agent.remote
        log.info("node %s joined cluster %s as node %d", config.name, config.cluster, number)

    async def _set_param(self, name: str, value: str) -> dict[str, str]:
        assert self.agent is not None
        return await self.agent.set_param(name, value)

    async def _forget_node(self, name: str) -> int:
        if self.agent is None:
            raise Unavailable("the node is still joining its cluster: retry shortly")
        return await self.agent.forget_node(name)

    def _identity(self) -> tuple[int, str, str]:
        number = self.agent.number if self.agent is not None else 0
        return number, self.feed.status.epoch, self.config.advertise or self.address

    async def _probe(self, address: str) -> MemberInfo | None:
        """Who is at `address` (static membership): its Hello, or None if it does not answer."""
        link = self._probes.get(address)
        if link is None:
            number = self.agent.number if self.agent is not None else self.config.node_number
            link = self._probes[address] = PeerLink(0, address, number, self.feed.status.epoch, 1.0)
        try:
            return await link.hello(self.config.cluster, self.config.name)
        except RamsterError:
            return None

    def _write_ready_file(self, path: Path) -> None:
        ready = {
            "number": self.agent.number if self.agent is not None else 0,
            "address": self.address,
            "pid": os.getpid(),
            "epoch": self.feed.status.epoch,
            "name": self.config.name,
            "metrics": self.metrics_address(),
        }
        partial = path.with_name(path.name + ".partial")
        try:
            partial.write_text(json.dumps(ready))
            partial.replace(path)  # readers never see half a file
        except OSError as error:
            raise FailedPrecondition(
                f"ready_file {str(path)!r} cannot be written: {error.strerror or error}"
            ) from None


JOIN_TIMEOUT = 30.0
"""Seconds a starting node keeps trying to reach etcd before it gives up."""


async def _with_retries(start: Callable[[], Awaitable[int]], timeout: float, what: str) -> int:
    """`start()`, retried with backoff while it raises Unavailable, up to `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    delay = 0.1
    while True:
        try:
            return await start()
        except Unavailable as error:
            if asyncio.get_running_loop().time() + delay > deadline:
                raise
            log.warning("%s: %s; retrying in %.1f s", what, error.message, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def run_node(config: NodeConfig) -> int:
    """Serve until SIGTERM or SIGINT; return the exit status."""
    node = Node(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await node.start()
    except BaseException:
        await node.stop()
        raise
    await stop.wait()
    await node.leave()
    return 0


def new_epoch(started_us: int) -> str:
    """An epoch for a node process started at `started_us` (microseconds since 1970): 16 hex
    digits that sort by start time, so the latest earlier epoch is the greatest."""
    return f"{started_us:013x}{secrets.randbelow(1 << 12):03x}"
