"""`NodeConfig`: everything a node is started with, frozen and validated in one place.

The CLI maps flags and ``RAMSTER_*`` environment variables onto it (`ramster.cli.main`); the
node passes its parts down (`ZcacheConfig`, `TmemLimits`) and never reads globals.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

from nodemanager.etcd_settings import EtcdCredentials
from nodemanager.keys import check_name, check_node_name
from ramster.errors import InvalidArgument, shown
from ramster.page import LZ4_CODEC, Codec
from ramster.params import (
    LEASE_TTL,
    READ_TIMEOUT_MS,
    RECOVER_TIMEOUT,
    REPAIR_RATE,
    check_whole_param,
)
from ramster.tmem import TmemLimits
from ramster.trust.files import read_page_key
from ramster.trust.identity import Identity, Role, identity_of_certificate
from ramster.wire.limits import split_advertise, split_host_port
from ramster.wire.tls import TLS
from ramster.zcache import ZcacheConfig

_OCTAL = re.compile(r"^[0-7]{1,4}$")
SOCKET_MODE_RULE = "octal permission bits 0000..0777, such as 0660"
UNIX = "unix://"
MAX_SOCKET_PATH = 98
"""Bytes in a unix socket path: sun_path holds 107, and a node binds ``PATH.`` and 8 hex digits
first (`ramster.rpc.listeners`)."""


def parse_socket_mode(text: str) -> int:
    """The permission bits of octal ``text`` such as ``0660``."""
    if not _OCTAL.match(text) or int(text, 8) > 0o777:
        raise InvalidArgument.field("socket_mode", text, SOCKET_MODE_RULE)
    return int(text, 8)


def unix_path(address: str) -> str | None:
    """The socket file of a ``unix:///path`` address; None for ``HOST:PORT``."""
    return address.removeprefix(UNIX) if address.startswith(UNIX) else None


def check_listen(address: str) -> None:
    """Refuse a listen address that is neither ``HOST:PORT`` nor ``unix:///PATH``."""
    path = unix_path(address)
    if path is None:
        split_host_port(address, "listen")
    elif not path.startswith("/") or len(os.fsencode(path)) > MAX_SOCKET_PATH:
        rule = f"unix:///PATH with an absolute PATH of at most {MAX_SOCKET_PATH} bytes"
        raise InvalidArgument.field("listen", address, rule)


def is_loopback(address: str) -> bool:
    """Whether TCP ``HOST:PORT`` `address` is reachable from this host only: ``localhost``,
    127.0.0.0/8 or ``::1`` (a unix socket is not TCP: False)."""
    if unix_path(address) is not None:
        return False
    host, _ = split_host_port(address, "listen")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any address


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What the node's gRPC server allows a connection and a source address, with defaults an
    operator of a public gRPC service would set (`ramster.rpc.connections` applies them).

    max_concurrent_streams: calls in flight on one connection (default 256; a client past it
        waits for a stream, it is not refused).
    max_connections: connections one TCP listener holds at once (default 16384), and never
        more than the node's descriptor limit leaves once 1024 are kept for everything else
        (etcd, peers, unix socket clients, files); a connection past it is closed at accept.
    max_connections_per_source: connections one source address holds on the node's TCP
        listeners (default 256: a host's clients and a peer's channel); the newest past it are
        cut within `guard_interval`.
    handshake_timeout: seconds a new connection has to complete its handshake (TLS and
        HTTP/2) before it is closed (default 10; gRPC's own is 120).
    idle_timeout: seconds a connection with no call in flight stays open (default 600).
    max_connection_age: seconds any connection stays open (default 86400) before the node asks
        its client to reconnect (GOAWAY), and `connection_age_grace` more (default 300) for
        the calls in flight on it. A day, not the hour or two of a load-balanced service: a
        frontend's state watch that is cut detaches it until it watches again.
    keepalive_time, keepalive_timeout: the node pings a connection that carried nothing for
        `keepalive_time` seconds (default 120) and closes it if no answer comes within
        `keepalive_timeout` (default 20): a peer gone without a word frees its connection.
    min_ping_interval, max_ping_strikes: a client pinging more often than every
        `min_ping_interval` seconds without calls (default 300, gRPC's) is told off; after
        `max_ping_strikes` (default 2) its connection is closed.
    guard_interval: seconds between two counts of each source's connections (default 1).
    """

    max_concurrent_streams: int = 256
    max_connections: int = 16384
    max_connections_per_source: int = 256
    handshake_timeout: float = 10.0
    idle_timeout: float = 600.0
    max_connection_age: float = 86400.0
    connection_age_grace: float = 300.0
    keepalive_time: float = 120.0
    keepalive_timeout: float = 20.0
    min_ping_interval: float = 300.0
    max_ping_strikes: int = 2
    guard_interval: float = 1.0

    def __post_init__(self) -> None:
        for name in ("max_concurrent_streams", "max_connections", "max_connections_per_source"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgument.field(name, value, "an int >= 1")
        strikes = self.max_ping_strikes
        if isinstance(strikes, bool) or not isinstance(strikes, int) or strikes < 0:
            raise InvalidArgument.field("max_ping_strikes", strikes, "an int >= 0")
        for name in (
            "handshake_timeout",
            "idle_timeout",
            "max_connection_age",
            "connection_age_grace",
            "keepalive_time",
            "keepalive_timeout",
            "min_ping_interval",
            "guard_interval",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise InvalidArgument.field(name, value, "seconds > 0")


@dataclass(frozen=True, slots=True)
class NbdConfig:
    """The node's NBD server (`ramster.nbd`; issue 13).

    listen: where NBD clients reach the node's exports: ``unix:///path`` (mode `socket_mode`
        of the node) or ``HOST:PORT`` (default none: no NBD server). On a node with TLS, a TCP
        client must STARTTLS with a certificate of the cluster CA; without TLS, TCP is served
        on loopback only, unless the node is `insecure`.
    spill: a file for the pages the store refuses (default None: such a write fails ENOSPC).
    spill_size: bytes the spill may hold, whole 4096-byte pages (required with `spill`).
    """

    listen: tuple[str, ...] = ()
    spill: str | None = None
    spill_size: int = 0

    def __post_init__(self) -> None:
        for address in self.listen:
            check_listen(address)
        if self.spill is not None and self.spill_size < 4096:
            raise InvalidArgument.field(
                "nbd_spill_size", self.spill_size, "at least 4096 bytes with a spill file"
            )
        if self.spill is None and self.spill_size:
            raise InvalidArgument("nbd_spill_size is given without a spill file (--nbd-spill)")


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """How one `ramster node` runs.

    listen: where applications and peers reach it: ``HOST:PORT`` (port 0: any free port) or
        ``unix:///path``; the primary address (the ready file's, the default advertise address).
    extra_listen: further addresses, each like `listen`, served the same (default none).
    socket_mode: permission bits every unix socket file gets once bound (default 0o660; 0o666
        lets any user on the host connect).
    store: the zcache settings, its memory budget first (local and foreign pages).
    name: the node's name in the cluster (default: the host name); letters, digits, ``._-``.
    cluster: the cluster name peers must share (default ``ramster``).
    metrics: ``HOST:PORT`` for Prometheus metrics, or None for none.
    zcache: the zcache backend loaded at start (default on).
    ramster: the remote layer on at start (default on).
    grace: seconds in-flight calls get to finish on SIGTERM (default 10).
    drain_timeout: seconds a SIGTERM waits for peers to move their copies off (default 20;
        0: stop at once).
    ready_file: a path the node writes, once serving, as JSON: address, pid, epoch, name.
    etcd: etcd endpoints (``http://HOST:PORT`` or ``https://HOST:PORT``, comma-separated) for
        membership, or None for static membership.
    etcd_credentials: what the node shows etcd: its CA for https, a client certificate or a
        user and password (default None: etcd without TLS or authentication).
    peers: without etcd, the ``HOST:PORT`` of every other node (none: alone).
    node_number: without etcd, this node's number (>= 1, unique in the cluster; default 1).
    advertise: ``HOST:PORT`` peers use to reach this node (default: the bound listen address).
    tls: the cluster CA and this node's certificate and key: every TCP listener requires a
        client certificate of that CA, and the node calls its peers with its certificate
        (default None: no TLS).
    insecure: without `tls`, serve plaintext on TCP addresses other than loopback too (default
        False: a node without TLS refuses to start on one, so that no one serves pages to the
        network by accident).
    page_key: the file of this node's page key (``NAME.pagekey``, 32 bytes, issued with its
        certificate): every page it ships to a peer is sealed under it (AES-256-GCM), and only
        it opens them again, after a restart too (default: ``NAME.pagekey`` beside the `tls`
        key if that file exists, else None: pages leave unsealed).
    peer_listen: where peers reach this node's Peer service, like `listen` (default None: on
        `listen` and `extra_listen`, beside Tmem and Admin); given, Peer is served there only,
        and Tmem and Admin are not, and it is the address published to peers unless
        `advertise` says otherwise.
    admin_listen: ``unix:///path`` of the admin socket (default None: none): Admin only, and
        every caller there may change settings; its file is mode 0600, so only the node's own
        user and root can connect.
    server: the limits of its gRPC server on connections and sources (`ServerLimits`).
    nbd: its NBD server (`NbdConfig`; default none).
    repair_rate, read_timeout_ms, lease_ttl, recover_timeout, codec: the module params of
        those names it starts with (`ramster.params`: defaults 20000 pages/s, 1000 ms, 3 s, 60 s
        and lz4; a cluster-wide value in etcd wins once it joins).
    """

    listen: str
    store: ZcacheConfig
    name: str = field(default_factory=socket.gethostname)
    cluster: str = "ramster"
    metrics: str | None = None
    zcache: bool = True
    ramster: bool = True
    grace: float = 10.0
    drain_timeout: float = 20.0
    ready_file: str | None = None
    limits: TmemLimits = field(default_factory=TmemLimits)
    etcd: str | None = None
    etcd_credentials: EtcdCredentials | None = None
    peers: tuple[str, ...] = ()
    node_number: int = 1
    advertise: str | None = None
    extra_listen: tuple[str, ...] = ()
    socket_mode: int = 0o660
    tls: TLS | None = None
    insecure: bool = False
    page_key: str | None = None
    peer_listen: str | None = None
    admin_listen: str | None = None
    server: ServerLimits = field(default_factory=ServerLimits)
    nbd: NbdConfig = field(default_factory=NbdConfig)
    repair_rate: int = REPAIR_RATE
    read_timeout_ms: int = READ_TIMEOUT_MS
    lease_ttl: int = LEASE_TTL
    recover_timeout: int = RECOVER_TIMEOUT
    codec: Codec = LZ4_CODEC

    def _check_certificate(self, tls: TLS) -> None:
        """A node serves with a node certificate that names it: its peers know it by its name
        (etcd maps the name to its number), and refuse it calls for any other node's pages."""
        identity = identity_of_certificate(Path(tls.cert).read_bytes())
        if identity != Identity(Role.NODE, self.name):
            raise InvalidArgument(
                f"tls cert {tls.cert} is {identity!r}: node {shown(self.name)} serves with a "
                f"node certificate of its own name (`ramster certs issue DIR node {self.name}`)"
            )

    def __post_init__(self) -> None:
        if self.page_key is None and self.tls is not None:
            beside = Path(self.tls.key).with_suffix(".pagekey")
            if beside.is_file():
                object.__setattr__(self, "page_key", str(beside))
        if self.page_key is not None:
            read_page_key(Path(self.page_key))  # refused at once if missing or not a key
        served = (self.listen, *self.extra_listen, *filter(None, (self.peer_listen,)))
        for address in served:
            check_listen(address)
        if self.admin_listen is not None:
            check_listen(self.admin_listen)
            if unix_path(self.admin_listen) is None:
                raise InvalidArgument.field(
                    "admin_listen",
                    self.admin_listen,
                    "unix:///path: a socket file whose mode (0600) decides who may connect",
                )
        if self.tls is not None and self.insecure:
            raise InvalidArgument("insecure and TLS contradict: give --insecure or the TLS flags")
        if self.tls is not None:
            self._check_certificate(self.tls)
        if self.tls is None and not self.insecure:
            for address in served:
                if unix_path(address) is None and not is_loopback(address):
                    raise InvalidArgument(
                        f"listen {address!r} is not loopback: serve it with --tls-ca, "
                        "--tls-cert and --tls-key, or pass --insecure to serve it in plaintext"
                    )
            for address in self.nbd.listen:
                if unix_path(address) is None and not is_loopback(address):
                    raise InvalidArgument(
                        f"nbd {address!r} is not loopback: serve it with --tls-ca, --tls-cert "
                        "and --tls-key (NBD clients STARTTLS with a certificate of the CA), or "
                        "pass --insecure to serve it in plaintext"
                    )
        mode = self.socket_mode
        if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o777:
            shown_mode = f"{mode:04o}" if type(mode) is int and mode >= 0 else mode
            raise InvalidArgument.field("socket_mode", shown_mode, SOCKET_MODE_RULE)
        if self.metrics is not None:
            split_host_port(self.metrics, "metrics")
        check_node_name("name", self.name)
        check_name("cluster", self.cluster)
        for peer in self.peers:
            split_host_port(peer, "peer")
        if self.advertise is not None:
            _, port = split_advertise(self.advertise)
            reached = self.peer_listen or self.listen
            if port is None and unix_path(reached) is not None:
                raise InvalidArgument(
                    f"advertise {shown(self.advertise)} has no port, and peers reach this node "
                    f"on {reached}, no TCP port to take: give HOST:PORT"
                )
        if self.etcd is not None and self.peers:
            raise InvalidArgument("peers are found through etcd: give --etcd or --peer, not both")
        if self.etcd_credentials is not None and self.etcd is None:
            raise InvalidArgument("etcd credentials are given without etcd endpoints (--etcd)")
        if not isinstance(self.node_number, int) or self.node_number < 1:
            raise InvalidArgument.field("node_number", self.node_number, "an int >= 1")
        if not self.grace >= 0:
            raise InvalidArgument.field("grace", self.grace, "seconds >= 0")
        if not self.drain_timeout >= 0:
            raise InvalidArgument.field("drain_timeout", self.drain_timeout, "seconds >= 0")
        for name in ("repair_rate", "read_timeout_ms", "lease_ttl", "recover_timeout"):
            check_whole_param(name, getattr(self, name))
