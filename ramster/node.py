"""The composition root of `ramster node`: config in, a serving node out. No policy lives here.

It builds the backend, the cluster agent (with the remote layer), the put and get paths
(`ramster.tiered`), the NBD exports over them (`ramster.nbd`), the services and their server
(`ramster.rpc.server`), each complete once; then it binds, serves the metrics endpoint, joins the
cluster (clients wait until the node's pages are back from its peers), serves NBD on ``--nbd``,
and runs until SIGTERM or SIGINT: then it drains (up to `drain_timeout`: peers move their copies
off it), reports shutting down, closes NBD connections, stops taking calls, lets in-flight ones
finish within `grace`, and exits 0.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from nodemanager.etcd import EtcdMembership
from nodemanager.keys import new_epoch
from nodemanager.model import MemberInfo, Membership
from nodemanager.static import StaticMembership
from ramster.backend import Backend
from ramster.cluster import ClusterAgent
from ramster.config import NodeConfig, unix_path
from ramster.errors import FailedPrecondition, RamsterError, Unavailable
from ramster.expiry import ClientSessions
from ramster.metrics import NodeMetrics
from ramster.nbd.exports import NodeExports
from ramster.nbd.server import NbdServer
from ramster.nbd.spill import Spill
from ramster.params import ModuleParams
from ramster.pinning import fix_mmap_threshold, lock_memory, pad_heap_top, set_io_flusher
from ramster.remote.policy import RemotifyConfig
from ramster.rpc import admin_service, peer_service, tmem_service
from ramster.rpc.access import Rules, anyone, guarded
from ramster.rpc.admin_service import AdminService
from ramster.rpc.call_metrics import CallMetrics
from ramster.rpc.caller import Callers
from ramster.rpc.peer_link import PeerLink
from ramster.rpc.peer_service import PeerService
from ramster.rpc.server import Listener, NodeServer
from ramster.rpc.tmem_service import TmemService
from ramster.state import NodeState, StateFeed
from ramster.tiered import TieredTmem
from ramster.trust.files import read_page_key
from ramster.trust.seal import OriginSeal
from ramster.wire.limits import advertised, split_host_port

log = logging.getLogger("ramster.node")

MAIN = "main"
PEERS = "peers"


class Node:
    """One running node: its backend, cluster agent, put and get paths, services and server."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        started = time.time_ns() // 1000
        self.backend = Backend(
            config.store,
            config.limits,
            ModuleParams(
                zcache=config.zcache,
                ramster=config.ramster,
                repair_rate=config.repair_rate,
                read_timeout_ms=config.read_timeout_ms,
                lease_ttl=config.lease_ttl,
                recover_timeout=config.recover_timeout,
                codec=config.codec,
            ),
            first_version=started,
            recovering=True,  # until the cluster is joined and pages are back
        )
        self.feed = StateFeed(
            NodeState(
                node_name=config.name,
                epoch=new_epoch(started),
                backend_generation=self.backend.generation,
                zcache=self.backend.serving,
                ramster=self.backend.ramster,
            )
        )
        self.address = ""
        self.peer_address = ""
        """Where peers reach this node: ``--peer-listen``'s address, else `address`."""
        self.advertised = ""
        """What peers are told to reach this node at (`advertised`), once it is bound."""
        self._probes: dict[str, PeerLink] = {}
        me = MemberInfo(
            number=0,
            name=config.name,
            address="",  # known once bound: `start` hands it to the agent
            epoch=self.feed.status.epoch,
            capacity_bytes=config.store.memory,
            free_bytes=config.store.memory,
            zcache=self.backend.zcache,
            ramster=self.backend.ramster,
        )
        seal = None
        if config.page_key is not None:
            seal = OriginSeal(config.name, read_page_key(Path(config.page_key)))
        self._link = functools.partial(
            PeerLink, cluster=config.cluster, name=config.name, tls=config.tls, seal=seal
        )
        agent = self.agent = ClusterAgent(
            self.backend, self.feed, self._membership(), me, RemotifyConfig(), self._link, seal=seal
        )
        self.tiered = TieredTmem(self.backend, agent.remote, agent.dictionaries)
        self.sessions = ClientSessions(self.backend)
        nbd = config.nbd
        spill = Spill(nbd.spill, nbd.spill_size) if nbd.spill is not None else None
        self.exports = NodeExports(self.backend, self.tiered, spill)
        self._nbd = NbdServer(self.exports)
        self.nbd_addresses: list[str] = []
        admin = AdminService(
            self.backend,
            self.feed,
            self.counters,
            agent.set_param,
            self.drain,
            agent.forget_node,
            self.undrain,
            self.exports,
        )
        # Peers asking who this is during recovery (Hello) get the number as soon as it is
        # claimed, not 0.
        peer = PeerService(
            config.cluster,
            config.name,
            self.backend,
            self._identity,
            lambda: agent.draining,
            agent.members,
            whole_view=config.etcd is not None,
        )
        self.metrics = NodeMetrics(config.name, self.counters)
        self._calls = CallMetrics(config.name, self.metrics.registry)
        self._server = NodeServer(
            self._listeners(TmemService(self.tiered, self.sessions), admin, peer),
            config.tls,
            config.server,
        )
        self._leaving = False  # SIGTERM: draining to exit, not to be undrained

    def _listeners(
        self, tmem: TmemService, admin: AdminService, peer: PeerService
    ) -> list[Listener]:
        """The node's listeners and who may call what on each (`ramster.rpc.access`): Tmem and
        Admin on ``--listen``, Peer there too or on ``--peer-listen`` alone, and Admin for
        everyone who can connect on the admin socket."""
        config = self.config
        callers = Callers.of_ca(config.tls.ca if config.tls is not None else None)
        rules = Rules.of_node(proven=config.tls is not None)
        main = "main listener"
        calls = self._calls
        served = [
            guarded(tmem.handler(), callers, rules.tmem, main, calls),
            guarded(admin.handler(), callers, rules.admin, main, calls),
        ]
        names = [tmem_service.SERVICE, admin_service.SERVICE]
        peers = guarded(peer.handler(), callers, rules.peer, "peer listener", calls)
        listeners = [
            Listener(
                MAIN,
                [*served, peers] if config.peer_listen is None else served,
                [*names, peer_service.SERVICE] if config.peer_listen is None else names,
                (config.listen, *config.extra_listen),
                config.socket_mode,
            )
        ]
        if config.peer_listen is not None:
            listeners.append(
                Listener(
                    PEERS, [peers], [peer_service.SERVICE], [config.peer_listen], config.socket_mode
                )
            )
        if config.admin_listen is not None:
            operators = guarded(admin.handler(), callers, anyone, "admin socket", calls)
            listeners.append(
                Listener(
                    "admin", [operators], [admin_service.SERVICE], [config.admin_listen], 0o600
                )
            )
        return listeners

    def __repr__(self) -> str:
        status = self.feed.status
        state = (
            "stopping" if status.shutting_down else ("running" if self._server.started else "new")
        )
        return f"<Node {self.config.name} {state} {self.address or '-'} {self.backend!r}>"

    def counters(self) -> dict[str, int]:
        status = self.feed.status
        return {
            **self.backend.counters(),
            **self.tiered.counters,
            **self.sessions.counters,
            **self.agent.remote.all_counters(),
            **self.agent.dictionaries.counters,
            **self.exports.counters(),
            "node_number": self.agent.number,
            "backend_generation": status.backend_generation,
            "zcache_on": int(status.zcache),
            "ramster_on": int(status.ramster),
        }

    async def start(self) -> None:
        config = self.config
        reached = self._server.bind()
        self.address = reached[MAIN]
        self.peer_address = reached.get(PEERS, self.address)
        self._log_transport()
        if config.metrics:  # before serving: a refused port must not leave a half-started node
            host, metrics_port = split_host_port(config.metrics, "metrics")
            try:
                await self.metrics.serve(host, metrics_port)
            except OSError as error:
                raise FailedPrecondition(
                    f"metrics {config.metrics!r} cannot be bound: "
                    f"{os.strerror(error.errno) if error.errno else error}"
                ) from None
        await self._server.start()
        self.advertised = advertised(config.advertise, self.peer_address)
        join = functools.partial(self.agent.start, self.advertised)
        number = await _with_retries(join, JOIN_TIMEOUT, f"joining cluster {config.cluster}")
        log.info("node %s joined cluster %s as node %d", config.name, config.cluster, number)
        self.backend.recovering = False
        self.sessions.start()  # recovered pools wait a lease (a grace) for their clients from now
        await self.agent.publish_state()
        await self._server.serving()
        if config.nbd.listen:
            # The kernel may swap to these exports: this process must never wait on that swap.
            lock_memory(f"node {config.name}")
            set_io_flusher(f"node {config.name}")
            pad_heap_top()  # a swap WRITE's pages freed once stored stay for the next one
            tls = config.tls.server_context() if config.tls is not None else None
            self.nbd_addresses = await self._nbd.start(config.nbd.listen, tls)
            log.info("node %s serves NBD on %s", config.name, ", ".join(self.nbd_addresses))
        log.info(
            "node %s serving on %s%s%s: %r",
            config.name,
            ", ".join((self.address, *config.extra_listen)),
            f", peers on {self.peer_address}" if config.peer_listen is not None else "",
            f", admin socket {config.admin_listen}" if config.admin_listen is not None else "",
            self.backend,
        )
        if config.ready_file:
            self._write_ready_file(Path(config.ready_file))

    def _log_transport(self) -> None:
        config = self.config
        peers = [self.peer_address] if config.peer_listen is not None else []
        listening = (self.address, *config.extra_listen, *peers)
        tcp = [address for address in listening if unix_path(address) is None]
        if config.tls is not None:
            log.info(
                "node %s serves TLS on %s (client certificates of CA %s); unix sockets serve "
                "without TLS, as the local identity",
                config.name,
                ", ".join(tcp) or "no TCP address",
                config.tls.ca,
            )
        elif config.insecure:
            log.warning(
                "node %s serves WITHOUT TLS on %s (--insecure): whoever reaches it may call it",
                config.name,
                ", ".join(tcp) or "no TCP address",
            )
        else:
            log.info(
                "node %s serves without TLS, so only on loopback and unix sockets: give "
                "--tls-ca, --tls-cert and --tls-key to serve other addresses",
                config.name,
            )
        if config.page_key is not None:
            log.info("pages shipped to peers are sealed under the page key %s", config.page_key)
        else:
            log.warning(
                "pages shipped to peers leave UNSEALED: give --page-key (NAME.pagekey, issued "
                "with the node's certificate) so peers can neither read nor swap them"
            )

    async def drain(self, timeout: float | None = None) -> int:
        """Stop taking peers' pages and wait up to `timeout` (default: the configured drain
        timeout) seconds for origins to move theirs off this node; the pages left."""
        timeout = self.config.drain_timeout if timeout is None else timeout
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
        if not self.agent.draining:
            return False
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
        await self._server.shutting_down()
        await self._nbd.stop()
        await self.exports.close()
        await self.feed.close()
        await self.sessions.stop()
        await self.agent.stop()
        for link in self._probes.values():
            await link.close()
        await self.metrics.close()
        await self._server.stop(self.config.grace)
        log.info("node %s stopped", self.config.name)

    def _membership(self) -> Membership:
        config = self.config
        if config.etcd is not None:
            return EtcdMembership(
                config.etcd, config.cluster, config.lease_ttl, credentials=config.etcd_credentials
            )
        return StaticMembership(
            config.node_number, list(config.peers), self._probe, ttl=config.lease_ttl
        )

    def _identity(self) -> tuple[int, str, str]:
        return self.agent.number, self.feed.status.epoch, self.advertised

    async def _probe(self, address: str) -> MemberInfo | None:
        """Who is at `address` (static membership): its Hello, or None if it does not answer."""
        link = self._probes.get(address)
        if link is None:
            number = self.agent.number or self.config.node_number
            epoch = self.feed.status.epoch
            link = self._probes[address] = self._link(0, address, number, epoch, 1.0)
        try:
            return await link.hello()
        except RamsterError:
            return None

    def _write_ready_file(self, path: Path) -> None:
        ready = {
            "number": self.agent.number,
            "address": self.address,
            "pid": os.getpid(),
            "epoch": self.feed.status.epoch,
            "name": self.config.name,
            "metrics": self.metrics.address,
            "nbd": self.nbd_addresses,
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
    fix_mmap_threshold()  # before any large block: its store's RSS stays what it holds
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
