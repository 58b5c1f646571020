"""Where a node listens: TCP ports and unix socket files that belong to this process alone.

gRPC shares a TCP port between processes (SO_REUSEPORT) unless told not to (`SERVER_OPTIONS`),
and it unlinks a unix socket path before it binds it and again when its server stops, whoever
the file belongs to by then. So a node binds a socket file under a private name, links it to
the public path only while no live process answers there (the stale file of a killed node is
replaced), and at exit removes the public path only if it is still that file (`SocketFile`).
The node's server (`ramster.rpc.server`) calls `bind_address` for every ``--listen`` and
`SocketFile.remove` once it has stopped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import stat
from dataclasses import dataclass
from typing import Any

import grpc

from ramster.config import unix_path
from ramster.errors import FailedPrecondition

log = logging.getLogger("ramster.node")

SERVER_OPTIONS: list[tuple[str, Any]] = [("grpc.so_reuseport", 0)]
"""gRPC server options: a port another process listens on must fail to bind, not be shared
(the kernel would split new connections between the two nodes)."""

PROBE_TIMEOUT = 1.0
"""Seconds a connect to an existing socket file may take: a live but busy process may be slow
to accept, and counts as live."""


@dataclass(frozen=True, slots=True)
class SocketFile:
    """A unix socket file this process created: its path and its (device, inode)."""

    path: str
    identity: tuple[int, int]

    def remove(self) -> None:
        """Unlink the path if it is still this file: another node may have taken it over."""
        with contextlib.suppress(FileNotFoundError):
            if _identity(os.lstat(self.path)) == self.identity:
                os.unlink(self.path)


def bind_address(
    server: grpc.aio.Server,
    address: str,
    socket_mode: int,
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[int, SocketFile | None]:
    """Bind `address` (not yet serving): the port bound (0 for a unix socket) and, for a unix
    socket, the file this process now owns, with permission bits `socket_mode`. A TCP address
    is served with `credentials` (TLS) if given; a unix socket always without: its mode decides
    who may connect (`ramster.rpc.caller`)."""
    path = unix_path(address)
    if path is None:
        return _add_port(server, address, address, credentials), None
    private = f"{path}.{secrets.token_hex(4)}"  # 9 bytes more: see config.MAX_SOCKET_PATH
    _add_port(server, f"unix://{private}", address, None)
    try:
        os.chmod(private, socket_mode)  # connecting needs write permission on the socket file
        _claim(private, path, address)
        return 0, SocketFile(path, _identity(os.lstat(private)))
    except OSError as error:
        raise FailedPrecondition(
            f"listen {address!r} cannot be bound: {error.strerror or error} ({error.filename})"
        ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(private)  # the public path is a hard link to the same socket


def _add_port(
    server: grpc.aio.Server,
    target: str,
    address: str,
    credentials: grpc.ServerCredentials | None,
) -> int:
    try:
        if credentials is not None:
            return server.add_secure_port(target, credentials)
        return server.add_insecure_port(target)
    except RuntimeError:  # grpc's words: "Failed to bind to address ..."
        raise FailedPrecondition(
            f"listen {address!r} cannot be bound: the address is in use or not this host's"
        ) from None


def _claim(private: str, path: str, address: str) -> None:
    """Link the socket file `private` to `path`, replacing a socket file nobody answers on."""
    while True:
        try:
            os.link(private, path)  # fails if anything is there: no window to lose a live file
            return
        except FileExistsError:
            pass
        try:
            found = os.lstat(path)
        except FileNotFoundError:
            continue  # removed meanwhile: link again
        if not stat.S_ISSOCK(found.st_mode):
            raise FailedPrecondition(
                f"listen {address!r} cannot be bound: {path!r} exists and is not a socket"
            )
        if _answers(path, address):
            raise FailedPrecondition(
                f"listen {address!r} cannot be bound: a live process answers on {path!r} "
                "(another node?)"
            )
        log.info("replacing the stale socket file %s: nobody answers on it", path)
        SocketFile(path, _identity(found)).remove()


def _answers(path: str, address: str) -> bool:
    """Whether a process listens on the socket file `path` (a slow one counts)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(PROBE_TIMEOUT)
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except TimeoutError:
            return True
        except OSError as error:
            raise FailedPrecondition(
                f"listen {address!r} cannot be bound: {path!r} cannot be checked: "
                f"{os.strerror(error.errno) if error.errno else error}"
            ) from None
        return True


def _identity(found: os.stat_result) -> tuple[int, int]:
    return found.st_dev, found.st_ino
