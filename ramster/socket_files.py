"""Unix socket files that belong to this process alone: claimed only from nobody, removed only
while still ours.

A server binds its socket under a private name and `claim`s the public path: the link fails if
anything is there, so a live file is never lost, and the stale file of a killed process (nobody
answers on it) is replaced. At exit `SocketFile.remove` unlinks the public path only if it is
still that file. The gRPC listeners (`ramster.rpc.listeners`) and the NBD server
(`ramster.nbd.server`) both bind this way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import stat
from dataclasses import dataclass

from ramster.errors import FailedPrecondition

log = logging.getLogger("ramster.node")

PROBE_TIMEOUT = 1.0
"""Seconds a connect to an existing socket file may take: a live but busy process may be slow
to accept, and counts as live."""


@dataclass(frozen=True, slots=True)
class SocketFile:
    """A unix socket file this process created: its path and its (device, inode)."""

    path: str
    identity: tuple[int, int]

    @classmethod
    def of(cls, path: str, found: os.stat_result) -> SocketFile:
        return cls(path, _identity(found))

    def remove(self) -> None:
        """Unlink the path if it is still this file: another node may have taken it over."""
        with contextlib.suppress(FileNotFoundError):
            if _identity(os.lstat(self.path)) == self.identity:
                os.unlink(self.path)


def listening_socket(path: str, address: str, socket_mode: int) -> tuple[socket.socket, SocketFile]:
    """A listening unix socket at `path` (of listen `address`) with permission bits
    `socket_mode`, that this process alone owns: for servers that bind their own sockets
    (`ramster.nbd.server`; gRPC binds its own, `ramster.rpc.listeners`)."""
    private = f"{path}.{secrets.token_hex(4)}"
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listening.bind(private)
        os.chmod(private, socket_mode)
        claim(private, path, address)
        file = SocketFile.of(path, os.lstat(private))
        listening.listen(128)
    except OSError as error:
        listening.close()
        raise FailedPrecondition(
            f"listen {address!r} cannot be bound: {error.strerror or error} ({error.filename})"
        ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(private)
    return listening, file


def claim(private: str, path: str, address: str) -> None:
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
        SocketFile.of(path, found).remove()


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
