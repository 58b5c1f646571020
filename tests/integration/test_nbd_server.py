"""The NBD server with real clients (`nbdinfo`, `qemu-io`) and with raw bytes, over exports in
memory: the protocol apart from the store (the store's exports: test_nbd_exports.py)."""

from __future__ import annotations

import concurrent.futures
import logging
import os
import re
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from ramster.nbd.protocol import Command, CommandFlag, Errno, Option, Reply
from tests.support.nbd import (
    MemoryExport,
    MemoryExports,
    RawClient,
    missing_tools,
    run_tool,
    served,
    uri,
)
from tests.support.tools import require


@pytest.fixture(autouse=True)
def _nbd_clients() -> None:
    require(f"NBD clients absent: {', '.join(missing_tools())}" if missing_tools() else None)


SIZE = 4 << 20


@pytest.fixture
def disk() -> MemoryExport:
    return MemoryExport(SIZE)


@pytest.fixture
def socket_path(tmp_path: Path, disk: MemoryExport) -> Iterator[Path]:
    path = tmp_path / "nbd.sock"
    with served(MemoryExports(disk=disk, other=MemoryExport(8192)), f"unix://{path}"):
        yield path


@pytest.fixture
def client(socket_path: Path) -> Iterator[RawClient]:
    raw = RawClient(socket_path)
    raw.greet()
    yield raw
    raw.close()


@pytest.fixture
def connected(client: RawClient) -> RawClient:
    assert client.go("disk")[-1].reply == Reply.ACK
    return client


def test_nbdinfo_lists_the_exports(socket_path: Path) -> None:
    listed = run_tool("nbdinfo", "--list", "--json", f"nbd+unix://?socket={socket_path}").stdout
    assert re.findall(r'"export-name": "(\w+)"', listed) == ["disk", "other"]


def test_nbdinfo_shows_size_block_sizes_and_flags(socket_path: Path) -> None:
    shown = run_tool("nbdinfo", uri(socket_path, "disk")).stdout
    assert f"export-size: {SIZE}" in shown
    for line in (
        "description: disk in memory",
        "block_size_minimum: 1",
        "block_size_preferred: 4096",
        "block_size_maximum: 33554432",
        "can_flush: true",
        "can_fua: true",
        "can_multi_conn: true",
        "can_trim: true",
        "can_zero: true",
        "is_read_only: false",
    ):
        assert line in shown


def test_qemu_io_partial_writes_zeroes_and_discard(socket_path: Path, disk: MemoryExport) -> None:
    run_tool(
        "qemu-io",
        "-f",
        "raw",
        "-c",
        "write -P 0x5a 100 5000",
        "-c",
        "write -z 8192 4096",
        "-c",
        "discard 65536 8192",
        "-c",
        "flush",
        "-c",
        "read -P 0x5a 100 5000",
        uri(socket_path, "disk"),
    )
    assert disk.data[:100] == bytes(100)
    assert disk.data[100:5100] == b"\x5a" * 5000
    assert disk.data[5100:8192] == bytes(3092)
    assert disk.trimmed == [(65536, 8192)]
    assert disk.flushes >= 1  # the flush command, and qemu-io flushes again as it closes


def test_several_connections_at_once_each_see_the_others_writes(
    socket_path: Path, disk: MemoryExport
) -> None:
    def write(n: int) -> None:
        run_tool(
            "qemu-io",
            "-f",
            "raw",
            "-c",
            f"write -P {n} {n * 65536} 65536",
            uri(socket_path, "disk"),
        )

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(1, 9)))
    for n in range(1, 9):
        assert disk.data[n * 65536 : (n + 1) * 65536] == bytes([n]) * 65536
    run_tool("qemu-io", "-f", "raw", "-c", "read -P 8 524288 65536", uri(socket_path, "disk"))


def test_requests_are_answered_by_cookie(connected: RawClient, disk: MemoryExport) -> None:
    disk.data[4096:8192] = b"\x01" * 4096
    connected.request(Command.READ, 4096, 4096, cookie=11)
    connected.request(Command.WRITE, 0, 3, b"abc", cookie=12, flags=CommandFlag.FUA)
    answers = {}
    for length in (4096, 0):
        error, cookie, data = connected.reply(4096 if length else 0)
        answers[cookie] = (error, data)
    assert answers == {11: (0, b"\x01" * 4096), 12: (0, b"")}
    assert disk.data[:3] == b"abc"


def test_a_write_with_fua_is_answered_after_a_flush_and_one_without_is_not(
    connected: RawClient, disk: MemoryExport
) -> None:
    for command, payload, cookie in [
        (Command.WRITE, b"abc", 1),
        (Command.WRITE_ZEROES, b"", 2),
        (Command.TRIM, b"", 3),
    ]:
        connected.request(command, 0, 3, payload, cookie=cookie)
        assert connected.reply() == (0, cookie, b"")
        connected.request(command, 0, 3, payload, cookie=cookie + 10, flags=CommandFlag.FUA)
        assert connected.reply() == (0, cookie + 10, b"")
    assert disk.flushes == 2  # the FUA WRITE's and the FUA WRITE_ZEROES'


@pytest.mark.parametrize(
    ("command", "offset", "length", "flags", "errno"),
    [
        (Command.READ, SIZE - 4096, 8192, 0, Errno.EINVAL),
        (Command.TRIM, SIZE, 1, 0, Errno.EINVAL),
        (Command.WRITE_ZEROES, SIZE - 1, 2, 0, Errno.ENOSPC),
        (Command.READ, 0, (32 << 20) + 1, 0, Errno.EINVAL),
        (Command.FLUSH, 1, 0, 0, Errno.EINVAL),
        (Command.CACHE, 0, 4096, 0, Errno.EINVAL),
        (99, 0, 0, 0, Errno.EINVAL),
        (Command.READ, 0, 4096, CommandFlag.NO_HOLE, Errno.EINVAL),
        (Command.WRITE_ZEROES, 0, 4096, CommandFlag.FAST_ZERO, Errno.EINVAL),
    ],
)
def test_malformed_requests_are_answered_with_their_error_and_serving_goes_on(
    connected: RawClient, command: int, offset: int, length: int, flags: int, errno: Errno
) -> None:
    connected.request(command, offset, length, flags=flags, cookie=5)
    assert connected.reply() == (errno, 5, b"")
    connected.request(Command.READ, 0, 4, cookie=6)
    assert connected.reply(4) == (0, 6, bytes(4))


def test_a_refused_write_has_its_payload_dropped_and_serving_goes_on(
    connected: RawClient, disk: MemoryExport
) -> None:
    connected.request(Command.WRITE, SIZE - 2, 4, b"wxyz", cookie=7)
    assert connected.reply() == (Errno.ENOSPC, 7, b"")
    payload = os.urandom(3 << 20)
    too_long = (32 << 20) + 4096
    connected.request(Command.WRITE, 0, too_long, cookie=8)
    for start in range(0, too_long, len(payload)):
        connected.sock.sendall(payload[: too_long - start])
    assert connected.reply() == (Errno.EINVAL, 8, b"")
    connected.request(Command.WRITE, 0, 2, b"ok", cookie=9)
    assert connected.reply() == (0, 9, b"")
    assert disk.data[:2] == b"ok"
    assert disk.data[SIZE - 2 :] == bytes(2)


def test_a_request_with_a_bad_magic_closes_the_connection(connected: RawClient) -> None:
    connected.request(Command.READ, 0, 4096, magic=0x12560953)
    assert connected.closed_by_server()


def test_disc_answers_what_is_in_flight_and_closes(connected: RawClient) -> None:
    connected.request(Command.READ, 0, 4, cookie=1)
    connected.request(Command.DISC, cookie=2)
    assert connected.reply(4) == (0, 1, bytes(4))
    assert connected.closed_by_server()


def test_unknown_export_is_err_unknown_and_negotiation_goes_on(client: RawClient) -> None:
    replies = client.go("nope")
    assert [(reply.reply, reply.data) for reply in replies] == [
        (Reply.ERR_UNKNOWN, b"no export named 'nope'")
    ]
    assert client.go("other")[0].data == struct.pack(">HQH", 0, 8192, 0b1_0110_1101)


def test_unknown_option_is_err_unsup(client: RawClient) -> None:
    client.option(Option.STARTTLS)
    assert client.option_reply().reply == Reply.ERR_UNSUP
    client.option(12345, b"data")
    assert client.option_reply().data == b"option 12345 is not supported"


def test_an_option_with_a_bad_magic_closes(client: RawClient) -> None:
    client.option(Option.LIST, magic=0x4E42444D41474943)
    assert client.closed_by_server()


def test_an_option_too_long_to_be_one_closes(client: RawClient) -> None:
    client.sock.sendall(struct.pack(">QII", 0x49484156454F5054, Option.GO, 1 << 30))
    assert client.closed_by_server()


def test_unknown_client_flags_close(socket_path: Path) -> None:
    raw = RawClient(socket_path)
    assert raw.greet(flags=0x80) == b"NBDMAGICIHAVEOPT\x00\x03"
    assert raw.closed_by_server()
    raw.close()


def test_abort_is_acknowledged_then_closed(client: RawClient) -> None:
    client.option(Option.ABORT)
    assert client.option_reply().reply == Reply.ACK
    assert client.closed_by_server()


def test_tcp_listener_serves_too(tmp_path: Path, disk: MemoryExport) -> None:
    with served(MemoryExports(disk=disk), "127.0.0.1:0") as bound:
        shown = run_tool("nbdinfo", "--size", f"nbd://{bound[0]}/disk").stdout
    assert shown == f"{SIZE}\n"


def test_refusals_of_one_kind_are_logged_once_per_interval_with_a_count(
    connected: RawClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "ramster.nbd")
    for cookie in range(5):
        connected.request(Command.READ, SIZE, 4096, cookie=cookie)
        assert connected.reply() == (Errno.EINVAL, cookie, b"")
    lines = [r.getMessage() for r in caplog.records if "EINVAL" in r.getMessage()]
    assert lines == [
        "NBD request refused with EINVAL: READ of 4096 bytes at offset 4194304 ends past the "
        "export's 4194304 bytes"
    ]


def test_stopping_the_server_closes_its_connections_without_an_error(
    tmp_path: Path, disk: MemoryExport, caplog: pytest.LogCaptureFixture
) -> None:
    """A node stops while nbdfuse is connected: the stop must not wait on the client (it hung
    until the client went), nor log the cancelled connection as an error."""
    path = tmp_path / "stopping.sock"
    with caplog.at_level(logging.INFO), served(MemoryExports(disk=disk), f"unix://{path}"):
        raw = RawClient(path)
        raw.greet()
        assert raw.go("disk")[-1].reply == Reply.ACK
    raw.close()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
