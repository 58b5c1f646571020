"""`NodeConfig`: everything a node is started with, frozen and validated in one place.

The CLI maps flags and ``RAMSTER_*`` environment variables onto it (`ramster.cli.main`); the
node passes its parts down (`ZcacheConfig`, `TmemLimits`) and never reads globals.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field

from ramster.errors import InvalidArgument
from ramster.tmem import TmemLimits
from ramster.zcache import ZcacheConfig

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def split_host_port(address: str, field_name: str) -> tuple[str, int]:
    """(host, port) of ``HOST:PORT`` (IPv6 as ``[::1]:PORT``); port 0 means any free port."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise InvalidArgument.field(field_name, address, "HOST:PORT with a port in 0..65535")
    return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """How one `ramster node` runs.

    listen: where applications and peers reach it: ``HOST:PORT`` (port 0: any free port) or
        ``unix:///path``.
    store: the zcache settings, its memory budget first (local and foreign pages).
    name: the node's name in the cluster (default: the host name); letters, digits, ``._-``.
    cluster: the cluster name peers must share (default ``ramster``).
    metrics: ``HOST:PORT`` for Prometheus metrics, or None for none.
    zcache: the zcache backend loaded at start (default on).
    ramster: the remote layer on at start (default on).
    grace: seconds in-flight calls get to finish on SIGTERM (default 10).
    ready_file: a path the node writes, once serving, as JSON: address, pid, epoch, name.
    etcd: etcd endpoints (``http://HOST:PORT``, comma-separated) for membership, or None for
        static membership.
    peers: without etcd, the ``HOST:PORT`` of every other node (none: alone).
    node_number: without etcd, this node's number (>= 1, unique in the cluster; default 1).
    advertise: ``HOST:PORT`` peers use to reach this node (default: the bound listen address).
    """

    listen: str
    store: ZcacheConfig
    name: str = field(default_factory=socket.gethostname)
    cluster: str = "ramster"
    metrics: str | None = None
    zcache: bool = True
    ramster: bool = True
    grace: float = 10.0
    ready_file: str | None = None
    limits: TmemLimits = field(default_factory=TmemLimits)
    etcd: str | None = None
    peers: tuple[str, ...] = ()
    node_number: int = 1
    advertise: str | None = None

    def __post_init__(self) -> None:
        if not self.listen.startswith("unix://"):
            split_host_port(self.listen, "listen")
        if self.metrics is not None:
            split_host_port(self.metrics, "metrics")
        for name in ("name", "cluster"):
            value = getattr(self, name)
            if not _NAME.match(value):
                raise InvalidArgument.field(
                    name, value, "1-63 letters, digits, '.', '_' or '-', starting alnum"
                )
        for peer in self.peers:
            split_host_port(peer, "peer")
        if self.advertise is not None:
            split_host_port(self.advertise, "advertise")
        if self.etcd is not None and self.peers:
            raise InvalidArgument("peers are found through etcd: give --etcd or --peer, not both")
        if not isinstance(self.node_number, int) or self.node_number < 1:
            raise InvalidArgument.field("node_number", self.node_number, "an int >= 1")
        if not self.grace >= 0:
            raise InvalidArgument.field("grace", self.grace, "seconds >= 0")
