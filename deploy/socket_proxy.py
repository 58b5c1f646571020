#!/usr/bin/env python3
"""``ramster-socket-proxy``: a unix socket that forwards every connection to a node's TCP port.

In Kubernetes the node listens on TCP (peers and probes reach it at its pod IP), and this proxy,
a sidecar of the node's pod, offers it on a socket in a hostPath folder, so that any pod on the
same host reaches its local node at ``unix:///run/ramster/ramster.sock`` without a network hop.
Bytes are copied as they come; gRPC runs end to end between the application and the node. It is
a stopgap until ``ramster node`` can listen on a unix socket and a TCP port at once.

SIGTERM or SIGINT closes the socket, removes its file and ends open connections.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

log = logging.getLogger("ramster.socket_proxy")
DESCRIPTION = "Offer a node's TCP port on a unix socket."
CHUNK = 256 * 1024


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one direction; at its end, pass the half-close on (the other may go on)."""
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


async def _splice(
    app: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    node: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    try:
        await asyncio.gather(_pipe(app[0], node[1]), _pipe(node[0], app[1]))
    finally:
        app[1].close()
        node[1].close()


async def serve(socket_path: Path, host: str, port: int, mode: int) -> None:
    """Forward connections on `socket_path` to (host, port) until SIGTERM or SIGINT."""
    tasks: set[asyncio.Task[None]] = set()

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError as error:
            log.warning("node at %s:%d unreachable: %s", host, port, error)
            writer.close()
            return
        task = asyncio.create_task(_splice((reader, writer), (up_reader, up_writer)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    if socket_path.is_socket():  # left behind by a killed predecessor
        socket_path.unlink()
    server = await asyncio.start_unix_server(forward, path=str(socket_path))
    os.chmod(socket_path, mode)  # connecting needs write permission on the socket file
    log.info("forwarding %s to %s:%d", socket_path, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()
    log.info("stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ramster-socket-proxy", description=DESCRIPTION)
    parser.add_argument("--socket", required=True, type=Path, help="the unix socket to create")
    parser.add_argument("--to", default="127.0.0.1:7470", help="the node, HOST:PORT")
    parser.add_argument(
        "--mode", default="0660", help="permissions of the socket file, octal (default 0660)"
    )
    args = parser.parse_args(argv)
    host, _, port = args.to.rpartition(":")
    if not host or not port.isdigit():
        parser.error(f"--to {args.to!r} is invalid: expected HOST:PORT")
    try:
        mode = int(args.mode, 8)
    except ValueError:
        parser.error(f"--mode {args.mode!r} is invalid: expected octal permissions such as 0660")
    if mode & ~0o777:
        parser.error(f"--mode {args.mode!r} is invalid: expected permission bits only (<= 0777)")
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args.socket, host.strip("[]"), int(port), mode))
    return 0


if __name__ == "__main__":
    sys.exit(main())
