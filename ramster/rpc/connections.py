"""What one connection and one source address may hold of the node's gRPC server (issue 12).

grpcio bounds a connection itself: its streams, its handshake, its idle time and age, keepalive
and the pings a client may send (`server_options`), and the connections of one listener in all
(``grpc.max_allowed_incoming_connections``, kept within the node's descriptor limit, which
`raise_file_limit` raises to its hard limit first, as etcd and Go programs do). It has no hook at
accept and no limit per source, so one source could take every connection the listener allows.
`SourceGuard` bounds that from outside, as ``ss`` sees connections: every `guard_interval` it
counts the established connections of each source address on the node's TCP ports
(/proc/net/tcp and tcp6), and shuts down the newest past `max_connections_per_source`; grpc then
sees its peer gone and closes them. Linux only, like the node. Not here: the server itself
(`ramster.rpc.server`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import resource
import socket
from collections import defaultdict
from collections.abc import Collection
from typing import Any

from ramster.config import ServerLimits

log = logging.getLogger("ramster.node")

FD_RESERVE = 1024
"""Descriptors kept out of the connection limit: etcd, peer channels, unix socket clients,
files, and the guard's own reads."""

ESTABLISHED = "01"
"""The state column of an established connection in /proc/net/tcp."""


def raise_file_limit() -> int:
    """Raise this process's soft descriptor limit to its hard limit; the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):  # a sandbox may refuse: keep the soft one
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def max_connections(limits: ServerLimits, file_limit: int) -> int:
    """Connections one listener may hold: `limits.max_connections`, within what `file_limit`
    leaves beside `FD_RESERVE`."""
    return max(1, min(limits.max_connections, file_limit - FD_RESERVE))


def server_options(limits: ServerLimits, file_limit: int) -> list[tuple[str, Any]]:
    """The grpcio server options of `limits`, for a process of `file_limit` descriptors."""

    def ms(seconds: float) -> int:
        return round(seconds * 1000)

    return [
        ("grpc.max_concurrent_streams", limits.max_concurrent_streams),
        ("grpc.max_allowed_incoming_connections", max_connections(limits, file_limit)),
        ("grpc.server_handshake_timeout_ms", ms(limits.handshake_timeout)),
        ("grpc.max_connection_idle_ms", ms(limits.idle_timeout)),
        ("grpc.max_connection_age_ms", ms(limits.max_connection_age)),
        ("grpc.max_connection_age_grace_ms", ms(limits.connection_age_grace)),
        ("grpc.keepalive_time_ms", ms(limits.keepalive_time)),
        ("grpc.keepalive_timeout_ms", ms(limits.keepalive_timeout)),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", ms(limits.min_ping_interval)),
        ("grpc.http2.max_ping_strikes", limits.max_ping_strikes),
    ]


class SourceGuard:
    """Keeps each source address to `limit` established connections on `ports` of this
    process, checking every `interval` seconds once started."""

    def __init__(self, limit: int, interval: float) -> None:
        self.limit = limit
        self.interval = interval
        self.ports: set[int] = set()
        self.cut_total = 0
        self._task: asyncio.Task[None] | None = None
        self._cutting: set[str] = set()  # sources cut in the last round: logged once a flood

    def __repr__(self) -> str:
        return f"<SourceGuard {self.limit} per source on {sorted(self.ports)} cut={self.cut_total}>"

    def start(self) -> None:
        if self.ports and self._task is None:
            self._task = asyncio.create_task(self._run(), name="source-guard")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                cut = await asyncio.to_thread(self.check)
            except OSError as error:  # /proc unreadable: the limits of grpcio still hold
                log.warning("counting connections per source failed: %s", error)
                continue
            for source, count in cut.items():
                if source not in self._cutting:
                    log.warning(
                        "cut %d connections from %s: it holds more than "
                        "max_connections_per_source %d",
                        count,
                        source,
                        self.limit,
                    )
            self._cutting = set(cut)

    def check(self) -> dict[str, int]:
        """Shut down the newest connections of each source past the limit; how many, by
        source. Cheap while this process holds fewer descriptors than one source may."""
        fds = os.listdir("/proc/self/fd")
        if len(fds) <= self.limit:
            return {}
        by_source: dict[str, list[int]] = defaultdict(list)
        for inode, source in established(self.ports):
            by_source[source].append(inode)
        over = {source: inodes for source, inodes in by_source.items() if len(inodes) > self.limit}
        if not over:
            return {}
        sockets = _socket_fds(fds)
        cut: dict[str, int] = {}
        for source, inodes in over.items():
            # Socket inodes grow as sockets are made: the newest connections are cut.
            newest = sorted(inodes)[self.limit :]
            done = sum(_shut(sockets[inode], inode) for inode in newest if inode in sockets)
            if done:
                cut[source] = done
                self.cut_total += done
        return cut


def established(ports: Collection[int]) -> list[tuple[int, str]]:
    """(socket inode, remote address) of every established connection on one of `ports`."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
                if state == ESTABLISHED and int(local.rsplit(":", 1)[1], 16) in ports:
                    found.append((int(inode), _address(remote.rsplit(":", 1)[0])))
    return found


def _address(hex_address: str) -> str:
    """The address of /proc/net/tcp's hex form: 32-bit words in host (little-endian) order."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(words)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _socket_fds(fds: list[str]) -> dict[int, int]:
    """Socket inode -> descriptor, for this process's descriptors `fds`."""
    sockets = {}
    for name in fds:
        with contextlib.suppress(OSError):  # closed meanwhile
            target = os.readlink(f"/proc/self/fd/{name}")
            if target.startswith("socket:["):
                sockets[int(target[8:-1])] = int(name)
    return sockets


def _shut(fd: int, inode: int) -> bool:
    """Shut down the connection of socket `inode` at descriptor `fd`, if `fd` still holds it
    (it may have been closed and reused since it was listed); `fd` itself stays grpc's."""
    try:
        copy = os.dup(fd)
    except OSError:
        return False
    try:
        same = os.fstat(copy).st_ino == inode
    except OSError:
        same = False
    if not same:
        os.close(copy)
        return False
    with socket.socket(fileno=copy) as sock:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # the connection is gone already
            return False
    return True
