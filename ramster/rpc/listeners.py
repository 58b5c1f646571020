"""Where a node listens: TCP ports and unix socket files that belong to this process alone.

gRPC shares a TCP port between processes (SO_REUSEPORT) unless told not to (`SERVER_OPTIONS`),
and it unlinks a unix socket path before it binds it and again when its server stops, whoever
the file belongs to by then. So a node binds a socket file under a private name, links it to
the public path only while no live process answers there (the stale file of a killed node is
replaced), and at exit removes the public path only if it is still that file
(`ramster.socket_files`).
The node's server (`ramster.rpc.server`) calls `bind_address` for every ``--listen`` and
`SocketFile.remove` once it has stopped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from typing import Any

import grpc

from ramster.config import unix_path
from ramster.errors import FailedPrecondition
from ramster.socket_files import SocketFile, claim

log = logging.getLogger("ramster.node")

SERVER_OPTIONS: list[tuple[str, Any]] = [("grpc.so_reuseport", 0)]
"""gRPC server options: a port another process listens on must fail to bind, not be shared
(the kernel would split new connections between the two nodes)."""


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
        claim(private, path, address)
        return 0, SocketFile.of(path, os.lstat(private))
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
