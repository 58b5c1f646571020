"""NBD from the client's side, for tests: a raw client that can send what no real client would,
the Debian clients (`nbdinfo`, `nbdcopy`, `qemu-io`) run as processes, and an `NbdServer` over
in-memory exports served from a thread of its own.

`RawClient` speaks bytes over a socket: the handshake step by step and requests with any magic,
command, flags or length, reading the replies as the server sent them.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ramster.nbd.handshake import ExportInfo
from ramster.nbd.protocol import (
    IHAVEOPT,
    OPTION_REPLY_MAGIC,
    REQUEST_MAGIC,
    SIMPLE_REPLY_MAGIC,
    Option,
)
from ramster.nbd.server import Export, NbdServer
from ramster.trust.identity import Identity
from tests.support.tools import find_tool

CLIENT_TOOLS = {"nbdinfo": "libnbd-bin", "nbdcopy": "libnbd-bin", "qemu-io": "qemu-utils"}
"""The real NBD clients the tests run, and the Debian package of each."""


def missing_tools() -> list[str]:
    return [f"{tool} ({package})" for tool, package in CLIENT_TOOLS.items() if not find_tool(tool)]


def run_tool(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run a client tool; its output as text, failing the test with stderr if it fails."""
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}: {done.stderr}"
    return done


def run_tool_failing(*args: str, timeout: float = 60.0) -> str:
    """Run a client tool that must fail; its stderr."""
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode != 0, f"{' '.join(args)} succeeded: {done.stdout}"
    return done.stderr


def uri(socket_path: Path, name: str) -> str:
    return f"nbd+unix:///{name}?socket={socket_path}"


class MemoryExport:
    """An export over a bytearray: what the server is tested with, apart from the store."""

    def __init__(self, size: int) -> None:
        self.data = bytearray(size)
        self.flushes = 0
        self.trimmed: list[tuple[int, int]] = []

    @property
    def size(self) -> int:
        return len(self.data)

    async def read(self, offset: int, length: int) -> bytes:
        return bytes(self.data[offset : offset + length])

    async def write(self, offset: int, data: bytes) -> None:
        self.data[offset : offset + len(data)] = data

    async def trim(self, offset: int, length: int) -> None:
        self.trimmed.append((offset, length))

    async def write_zeroes(self, offset: int, length: int, no_hole: bool) -> None:
        self.data[offset : offset + length] = bytes(length)

    async def flush(self) -> None:
        self.flushes += 1


class MemoryExports:
    def __init__(self, **exports: MemoryExport) -> None:
        self.exports = exports

    def find(self, name: str) -> ExportInfo | None:
        export = self.exports.get(name)
        return ExportInfo(name, export.size, f"{name} in memory") if export else None

    def listing(self) -> Sequence[ExportInfo]:
        return [ExportInfo(name, export.size) for name, export in self.exports.items()]

    def export(self, name: str) -> Export | None:
        return self.exports.get(name)

    def seen_by(self, identity: Identity | None) -> MemoryExports:
        return self


@contextmanager
def served(exports: MemoryExports, address: str) -> Iterator[list[str]]:
    """`exports` served on `address` from an event loop in a thread; the bound addresses."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = NbdServer(exports)
    bound = asyncio.run_coroutine_threadsafe(server.start([address]), loop).result(10)
    try:
        yield bound
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@dataclass(frozen=True, slots=True)
class OptionReply:
    option: int
    reply: int
    data: bytes


class RawClient:
    """One connection to an NBD server, spoken byte by byte."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(path))

    def close(self) -> None:
        self.sock.close()

    def receive(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            piece = self.sock.recv(size - len(data))
            if not piece:
                raise ConnectionError(f"closed after {len(data)} of {size} bytes")
            data += piece
        return data

    def closed_by_server(self) -> bool:
        """Whether the server closed the connection (reads end of stream)."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def greet(self, flags: int = 3) -> bytes:
        """Read the greeting and answer with client `flags`; the greeting."""
        greeting = self.receive(18)
        self.sock.sendall(struct.pack(">I", flags))
        return greeting

    def option(self, option: int, data: bytes = b"", magic: int = IHAVEOPT) -> None:
        self.sock.sendall(struct.pack(">QII", magic, option, len(data)) + data)

    def option_reply(self) -> OptionReply:
        magic, option, reply, length = struct.unpack(">QIII", self.receive(20))
        assert magic == OPTION_REPLY_MAGIC
        return OptionReply(option, reply, self.receive(length))

    def go(self, name: str) -> list[OptionReply]:
        """OPT_GO to `name`: every reply up to and with the final one."""
        encoded = name.encode()
        self.option(Option.GO, struct.pack(">I", len(encoded)) + encoded + b"\x00\x00")
        replies = [self.option_reply()]
        while replies[-1].reply == 3:  # NBD_REP_INFO: more follow
            replies.append(self.option_reply())
        return replies

    def request(
        self,
        command: int,
        offset: int = 0,
        length: int = 0,
        data: bytes = b"",
        flags: int = 0,
        cookie: int = 1,
        magic: int = REQUEST_MAGIC,
    ) -> None:
        header = struct.pack(">IHHQQI", magic, flags, command, cookie, offset, length)
        self.sock.sendall(header + data)

    def reply(self, length: int = 0) -> tuple[int, int, bytes]:
        """(error, cookie, data) of a simple reply; `length` bytes of data follow no error."""
        magic, error, cookie = struct.unpack(">IIQ", self.receive(16))
        assert magic == SIMPLE_REPLY_MAGIC
        return error, cookie, self.receive(length) if not error else b""
