"""The NBD server: unix and TCP listeners, the handshake, then requests served out of order.

Each connection negotiates (`ramster.nbd.handshake`, within `HANDSHAKE_SECONDS`), then a reader
loop parses requests and starts one task per request; a task answers with a simple reply as
soon as its work is done, so replies may overtake each other (the client matches them by
cookie). Memory stays bounded: a READ or WRITE is at most `MAX_PAYLOAD` bytes, and a connection
reads no further request while `MAX_IN_FLIGHT` requests or `MAX_IN_FLIGHT_BYTES` of payload are
in flight (TCP back-pressure does the rest), buffers at most about twice `READ_AHEAD` bytes it
has not parsed yet, and a server holds at most `MAX_CONNECTIONS`. A
refused request is answered with its NBD error
(a refused WRITE's payload is read and dropped in `SKIP_CHUNK` pieces); a broken rule the
stream cannot recover from (a bad magic) closes the connection; an error of the store is EIO,
logged; nothing escapes a connection. Refusals are logged at most once per `LOG_INTERVAL` per
kind, with the count of those held back: a full spill under swap refuses every write.

The server knows exports only through `Exports` and `Export`: names, sizes and byte-range
operations. Not here: what an export stores (`ramster.nbd.exports`), which addresses the node
may serve NBD on (`ramster.config`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
from collections.abc import Awaitable, Sequence
from typing import Protocol

from ramster.config import unix_path
from ramster.errors import FailedPrecondition, RamsterError
from ramster.nbd.bounds import ByteBudget, Throttle
from ramster.nbd.handshake import Catalogue, Tls, answer_option
from ramster.nbd.protocol import (
    CLIENT_FLAGS,
    GREETING,
    MAX_PAYLOAD,
    OPTION_HEADER,
    REQUEST,
    ClientFlag,
    Command,
    CommandFlag,
    Errno,
    Request,
    RequestRefused,
    Violation,
    check_request,
    parse_client_flags,
    parse_option_header,
    parse_request,
    simple_reply,
)
from ramster.socket_files import SocketFile, listening_socket
from ramster.trust.identity import Identity, identity_of_certificate
from ramster.wire.limits import split_host_port

log = logging.getLogger("ramster.nbd")

SOCKET_MODE = 0o600
"""The mode of the node's NBD socket files, whatever its ``--socket-mode``: an NBD client there
proves nothing and reaches every export (the host's swap), so only the node's user and root
may connect, as to its admin socket."""
HANDSHAKE_SECONDS = 30.0
"""A client that has not chosen an export by then is closed: a connection stuck in option
haggling holds a socket and nothing else."""
MAX_IN_FLIGHT = 64
"""Requests of one connection being served at once."""
MAX_IN_FLIGHT_BYTES = 2 * MAX_PAYLOAD
"""READ and WRITE payload bytes of one connection held at once: at least `MAX_PAYLOAD`, so that
every request fits."""
READ_AHEAD = 2 << 20
"""A connection stops reading its socket once twice this many bytes wait unparsed. asyncio's
64 KiB default paused it every 128 KiB of a swap WRITE's 512 KiB, each resume waiting for a turn
of the busy loop (payload in 5.9-8.2 ms, median under swap; 4.6-5.2 ms with this)."""
SKIP_CHUNK = 1 << 20
"""The piece in which the payload of a refused WRITE is read and dropped."""
MAX_CONNECTIONS = 256
"""Connections one server holds at once; one more is closed at once."""
FORCED = (Command.WRITE, Command.WRITE_ZEROES)
"""The commands whose FUA flag asks for a FLUSH once they are done: those that write."""
LOG_INTERVAL = 10.0
"""Seconds between two log lines of one kind of refusal."""


class Export(Protocol):
    """An export as the server serves it: byte ranges, checked against `size` beforehand.
    Operations refuse with `RequestRefused` (its errno is answered) or any `RamsterError`
    (answered EIO)."""

    @property
    def size(self) -> int: ...

    async def read(self, offset: int, length: int) -> bytes: ...

    async def write(self, offset: int, data: bytes) -> None: ...

    async def trim(self, offset: int, length: int) -> None: ...

    async def write_zeroes(self, offset: int, length: int, no_hole: bool) -> None: ...

    async def flush(self) -> None:
        """Return once every write acknowledged before it is durable (for a FLUSH, and after a
        write with FUA)."""
        ...


class Exports(Catalogue, Protocol):
    """The exports clients may choose (`Catalogue`), and each one to serve."""

    def export(self, name: str) -> Export | None: ...

    def seen_by(self, identity: Identity | None) -> Exports:
        """The exports a client proven to be `identity` may see and use (None: one that proved
        nothing, on a unix socket or a TCP listener without TLS: who connects decides)."""
        ...


class NbdServer:
    """Serves `exports` over NBD on the addresses given to `start`."""

    def __init__(self, exports: Exports) -> None:
        self._exports = exports
        self._servers: list[asyncio.Server] = []
        self._files: list[SocketFile] = []
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        """Each connection's task, and its stream to close when the server stops."""
        self._throttled = Throttle(log, LOG_INTERVAL)

    def __repr__(self) -> str:
        return f"<NbdServer listeners={len(self._servers)} connections={len(self._connections)}>"

    async def start(self, addresses: Sequence[str], tls: ssl.SSLContext | None = None) -> list[str]:
        """Listen on `addresses` (``unix:///PATH`` files get `SOCKET_MODE`; TCP listeners require
        STARTTLS with `tls` if given); the addresses as bound (a TCP port 0 replaced by the port
        given)."""
        bound = []
        for address in addresses:
            path = unix_path(address)
            if path is None:
                host, port = split_host_port(address, "nbd")
                serve = functools.partial(self._serve, tls=tls)
                starting = asyncio.start_server(serve, host, port, limit=READ_AHEAD)
                server = await self._listen(address, starting)
                port = server.sockets[0].getsockname()[1]
                bound.append(f"{'[' + host + ']' if ':' in host else host}:{port}")
            else:
                listening, file = listening_socket(path, address, SOCKET_MODE)
                self._files.append(file)
                serving = asyncio.start_unix_server(self._serve, sock=listening, limit=READ_AHEAD)
                await self._listen(address, serving)
                bound.append(address)
        return bound

    async def _listen(self, address: str, starting: Awaitable[asyncio.Server]) -> asyncio.Server:
        try:
            server = await starting
        except OSError as error:
            raise FailedPrecondition(
                f"nbd {address!r} cannot be bound: {error.strerror or error}"
            ) from None
        self._servers.append(server)
        return server

    async def stop(self) -> None:
        """Stop listening and close every connection (requests in flight end with it)."""
        for server in self._servers:
            server.close()
        for task, writer in list(self._connections.items()):
            # Closing the stream ends a connection wherever it waits for its client; the
            # cancel ends it wherever it waits for the store. Either alone can be lost: Python
            # 3.11's wait_for drops a cancel that meets the end of the handshake.
            writer.transport.abort()
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        for file in self._files:
            file.remove()

    async def _serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = writer.get_extra_info("peername") or "a unix socket"
        if len(self._connections) >= MAX_CONNECTIONS:
            self._throttled.warning(
                "full", "NBD client %s refused: %d connections", peer, MAX_CONNECTIONS
            )
            writer.close()
            return
        self._connections[task] = writer
        try:
            negotiated = self._negotiate(reader, writer, tls)
            chosen = await asyncio.wait_for(negotiated, HANDSHAKE_SECONDS)
            export = chosen[0].export(chosen[1]) if chosen is not None else None
            name = chosen[1] if chosen is not None else None
            if export is not None:
                log.info("NBD client %s serves export %r", peer, name)
                await _Transmission(export, reader, writer, self._throttled).run()
        except Violation as violation:
            log.warning("NBD client %s broke the protocol (%s): closing", peer, violation)
        except TimeoutError:
            log.warning("NBD client %s chose no export in %.0f s: closing", peer, HANDSHAKE_SECONDS)
        except (asyncio.IncompleteReadError, ConnectionError) as error:
            log.info("NBD client %s went away: %s", peer, error.__class__.__name__)
        except (ssl.SSLError, RamsterError) as error:
            log.warning("NBD client %s failed TLS: %s: closing", peer, error)
        except Exception:  # a connection never takes the node down
            log.exception("NBD client %s: unexpected error: closing", peer)
        except asyncio.CancelledError:
            # `stop` cancels every connection. This task is asyncio's own for the connection,
            # whose done callback logs a cancelled task as an error: it ends normally instead.
            log.info("NBD client %s: the node stops serving NBD", peer)
        finally:
            self._connections.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _negotiate(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tls: ssl.SSLContext | None
    ) -> tuple[Exports, str] | None:
        """The exports the client may use and the name of the one it chose, or None if it
        aborted or named an unknown one. With `tls`, the client must upgrade with STARTTLS and
        prove who it is with a certificate of the cluster CA."""
        writer.write(GREETING)
        await writer.drain()
        flags = parse_client_flags(await reader.readexactly(CLIENT_FLAGS.size))
        no_zeroes = ClientFlag.NO_ZEROES in flags
        stage = Tls.NOT_OFFERED if tls is None else Tls.REQUIRED
        exports = self._exports.seen_by(None)
        while True:
            option, length = parse_option_header(await reader.readexactly(OPTION_HEADER.size))
            data = await reader.readexactly(length)
            answer = answer_option(option, data, exports, no_zeroes, stage)
            writer.write(answer.replies)
            await writer.drain()
            if answer.starttls:
                assert tls is not None
                await writer.start_tls(tls)
                stage = Tls.DONE
                exports = self._exports.seen_by(_identity(writer))
            if answer.close:
                log.info("NBD negotiation ended: %s", answer.reason)
                return None
            if answer.chosen is not None:
                return exports, answer.chosen


class _Transmission:
    """The transmission phase of one connection on `export`."""

    def __init__(
        self,
        export: Export,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        throttled: Throttle,
    ) -> None:
        self._export = export
        self._throttled = throttled
        self._reader = reader
        self._writer = writer
        self._requests = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._bytes = ByteBudget(MAX_IN_FLIGHT_BYTES)
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Serve requests until NBD_CMD_DISC or the end of the stream; requests in flight are
        answered before it returns (NBD_CMD_DISC: "handle all outstanding requests")."""
        try:
            while True:
                request = parse_request(await self._reader.readexactly(REQUEST.size))
                try:
                    command = check_request(request, self._export.size)
                except RequestRefused as refused:
                    if request.command == Command.WRITE:
                        await _skip(self._reader, request.length)
                    self._answer(request, refused.errno, refused.message)
                    await self._writer.drain()
                    continue
                if command is Command.DISC:
                    return
                cost = request.length if command in (Command.READ, Command.WRITE) else 0
                await self._requests.acquire()
                await self._bytes.take(cost)
                payload = b""
                if command is Command.WRITE:
                    payload = await self._reader.readexactly(request.length)
                task = asyncio.create_task(self._execute(request, command, payload, cost))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _execute(self, request: Request, command: Command, payload: bytes, cost: int) -> None:
        try:
            data = b""
            errno: int = 0
            try:
                data = await self._perform(request, command, payload)
            except RequestRefused as refused:
                errno = refused.errno
                kind = f"{command.name} {refused.errno.name}"
                self._throttled.warning(kind, "NBD %s refused: %s", command.name, refused.message)
            except RamsterError as error:
                errno = Errno.EIO
                kind = f"{command.name} {error.status}"
                self._throttled.warning(kind, "NBD %s failed: %s", command.name, error.message)
            except Exception:
                errno = Errno.EIO
                log.exception("NBD %s failed unexpectedly", command.name)
            self._writer.writelines((simple_reply(request.cookie, errno), data))
            with contextlib.suppress(ConnectionError):
                await self._writer.drain()
        finally:
            self._bytes.give(cost)
            self._requests.release()

    async def _perform(self, request: Request, command: Command, payload: bytes) -> bytes:
        export, offset, length = self._export, request.offset, request.length
        if command is Command.READ:
            return await export.read(offset, length) if length else b""
        if command is Command.WRITE:
            if payload:
                await export.write(offset, payload)
        elif command is Command.TRIM:
            if length:
                await export.trim(offset, length)
        elif command is Command.WRITE_ZEROES:
            if length:
                no_hole = bool(request.flags & CommandFlag.NO_HOLE)
                await export.write_zeroes(offset, length, no_hole)
        else:
            assert command is Command.FLUSH, command
            await export.flush()
        if request.flags & CommandFlag.FUA and command in FORCED:
            await export.flush()  # the write holds its copies, with every one before it
        return b""

    def _answer(self, request: Request, errno: Errno, message: str) -> None:
        self._throttled.warning(errno.name, "NBD request refused with %s: %s", errno.name, message)
        self._writer.write(simple_reply(request.cookie, errno))


def _identity(writer: asyncio.StreamWriter) -> Identity:
    """Who the client's certificate (verified against the CA by the TLS handshake) names."""
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    return identity_of_certificate(ssl.DER_cert_to_PEM_cert(der).encode())


async def _skip(reader: asyncio.StreamReader, length: int) -> None:
    """Read and drop `length` bytes, at most `SKIP_CHUNK` at a time."""
    while length:
        piece = min(length, SKIP_CHUNK)
        await reader.readexactly(piece)
        length -= piece
