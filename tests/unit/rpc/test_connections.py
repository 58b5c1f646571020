"""The node's limits on connections and sources (`ramster.rpc.connections`, issue 12).

The grpcio options each `ServerLimits` field becomes, the connection cap kept within the
descriptor limit, the limits refused when out of range with exact messages, and `SourceGuard` on
real sockets of this process: it shuts down the newest connections of a source past its limit,
and only those. The flood on a real node is in tests/fault/test_flood.py.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from ramster.config import ServerLimits
from ramster.errors import InvalidArgument
from ramster.rpc.connections import FD_RESERVE, SourceGuard, established, server_options


def test_the_defaults_become_these_grpc_options() -> None:
    assert dict(server_options(ServerLimits(), 1 << 20)) == {
        "grpc.max_concurrent_streams": 256,
        "grpc.max_allowed_incoming_connections": 16384,
        "grpc.server_handshake_timeout_ms": 10_000,
        "grpc.max_connection_idle_ms": 600_000,
        "grpc.max_connection_age_ms": 86_400_000,
        "grpc.max_connection_age_grace_ms": 300_000,
        "grpc.keepalive_time_ms": 120_000,
        "grpc.keepalive_timeout_ms": 20_000,
        "grpc.http2.min_recv_ping_interval_without_data_ms": 300_000,
        "grpc.http2.max_ping_strikes": 2,
    }


def test_the_connection_cap_leaves_the_reserve_of_the_descriptor_limit() -> None:
    options = dict(server_options(ServerLimits(), 4096))
    assert options["grpc.max_allowed_incoming_connections"] == 4096 - FD_RESERVE


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("max_connections_per_source", 0, "an int >= 1"),
        ("max_concurrent_streams", True, "an int >= 1"),
        ("max_ping_strikes", -1, "an int >= 0"),
        ("idle_timeout", 0, "seconds > 0"),
        ("handshake_timeout", float("nan"), "seconds > 0"),
    ],
)
def test_limits_out_of_range_are_refused_naming_the_field(
    field: str, value: object, expected: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        ServerLimits(**{field: value})  # type: ignore[arg-type]
    assert refused.value.message == f"{field} {value!r} is invalid: expected {expected}"


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server


def connect(port: int, source: str, server: socket.socket) -> tuple[socket.socket, socket.socket]:
    """A connection from `source`: (the client's end, this process's accepted end)."""
    client = socket.socket()
    client.bind((source, 0))
    client.connect(("127.0.0.1", port))
    accepted, _ = server.accept()
    return client, accepted


def test_the_guard_cuts_the_newest_connections_of_a_source_past_its_limit(
    listener: socket.socket,
) -> None:
    port = listener.getsockname()[1]
    flood = [connect(port, "127.0.0.2", listener) for _ in range(5)]
    others = [connect(port, "127.0.0.1", listener) for _ in range(2)]
    guard = SourceGuard(limit=3, interval=1.0)
    guard.ports.add(port)
    try:
        # The accepted ends (local port: the listener's) by their source; not the clients' ends.
        sources = sorted(source for _, source in established({port}))
        assert sources == ["127.0.0.1"] * 2 + ["127.0.0.2"] * 5

        assert guard.check() == {"127.0.0.2": 2}
        assert guard.check() == {}  # at the limit now
        for client, _ in flood[3:]:
            assert client.recv(1) == b""  # cut: the client sees the end of the stream
        for client, _ in flood[:3] + others:
            client.setblocking(False)
            with pytest.raises(BlockingIOError):  # still open, nothing to read
                client.recv(1)
        assert guard.cut_total == 2
    finally:
        for pair in flood + others:
            for end in pair:
                end.close()
