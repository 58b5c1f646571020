"""`tests.support.delay_proxy.DelayProxy` against a loopback echo server: bytes go through
unchanged, delays are applied, a black hole stalls until restored, and close leaves nothing."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.delay_proxy import DelayProxy


@pytest.fixture
def echo() -> Iterator[str]:
    """An echo server on a free loopback port: its ``HOST:PORT``."""
    listener = socket.create_server(("127.0.0.1", 0))
    sockets: list[socket.socket] = []

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                sockets.append(conn)
                threading.Thread(target=_echo, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    listener.shutdown(socket.SHUT_RDWR)
    listener.close()
    for conn in sockets:
        conn.close()
    thread.join(5)


def _echo(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := conn.recv(65536):
            conn.sendall(data)


def connect(proxy: DelayProxy) -> socket.socket:
    host, port = proxy.address.split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    return sock


def receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def test_bytes_go_through_unchanged_both_ways(echo: str) -> None:
    payload = os.urandom(1 << 20)
    with DelayProxy(echo) as proxy, connect(proxy) as sock:
        assert proxy.address.startswith("127.0.0.1:") and proxy.address != echo
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        assert receive(sock, len(payload)) == payload
        sender.join()
        assert repr(proxy) == (
            f"<DelayProxy {proxy.address} -> {echo} open up=0.0s down=0.0s connections=1>"
        )


@pytest.mark.parametrize(("up", "down"), [(0.3, 0.0), (0.0, 0.3), (0.2, 0.2)])
def test_each_direction_delays_every_chunk(echo: str, up: float, down: float) -> None:
    with DelayProxy(echo) as proxy, connect(proxy) as sock:
        sock.sendall(b"warm")  # the upstream connection is open before timing
        assert receive(sock, 4) == b"warm"
        proxy.set_delay(up=up, down=down)
        started = time.monotonic()
        sock.sendall(b"ping")
        assert receive(sock, 4) == b"ping"
        # At least the delay: how much longer depends on the machine's load, not the proxy.
        assert time.monotonic() - started >= up + down


def test_a_black_hole_stalls_old_and_new_connections_until_restored(echo: str) -> None:
    with DelayProxy(echo) as proxy, connect(proxy) as old:
        old.sendall(b"before")
        assert receive(old, 6) == b"before"
        proxy.black_hole()
        assert proxy.black_holed
        old.settimeout(0.5)
        old.sendall(b"during")
        with pytest.raises(TimeoutError):
            old.recv(16)
        new = connect(proxy)  # accepted, but nothing comes back
        new.settimeout(0.5)
        new.sendall(b"fresh")
        with pytest.raises(TimeoutError):
            new.recv(16)
        proxy.restore()
        old.settimeout(5)
        new.settimeout(5)
        assert receive(old, 6) == b"during"  # held, not dropped
        assert receive(new, 5) == b"fresh"
        new.close()


def test_close_ends_the_thread_and_every_socket(echo: str) -> None:
    before = set(threading.enumerate())
    proxy = DelayProxy(echo).start()
    sock = connect(proxy)
    sock.sendall(b"x")
    assert receive(sock, 1) == b"x"
    proxy.black_hole()
    proxy.close()
    assert set(threading.enumerate()) - before == set()  # the echo server's may end meanwhile
    sock.settimeout(5)
    assert sock.recv(16) == b""  # the proxy closed its side
    sock.close()
    with pytest.raises(OSError):
        connect(proxy)
    proxy.close()  # twice is harmless
