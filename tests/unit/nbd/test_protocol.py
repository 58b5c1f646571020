"""The NBD codecs on plain bytes: every malformed input is a named refusal, never an exception of
another kind (`ramster.nbd.protocol`)."""

from __future__ import annotations

import struct

import pytest

from ramster.nbd.protocol import (
    GREETING,
    IHAVEOPT,
    MAX_OPTION_LENGTH,
    MAX_PAYLOAD,
    REQUEST_MAGIC,
    ClientFlag,
    Command,
    CommandFlag,
    Errno,
    InfoRequest,
    OptionRefused,
    Reply,
    Request,
    RequestRefused,
    TransmissionFlag,
    Violation,
    check_request,
    export_name_reply,
    option_reply,
    parse_client_flags,
    parse_info_request,
    parse_option_header,
    parse_request,
    simple_reply,
)

SIZE = 1 << 20


def header(
    command: int, offset: int = 0, length: int = 0, flags: int = 0, cookie: int = 7
) -> bytes:
    return struct.pack(">IHHQQI", REQUEST_MAGIC, flags, command, cookie, offset, length)


def info_data(name: bytes, *infos: int) -> bytes:
    return struct.pack(">I", len(name)) + name + struct.pack(f">H{len(infos)}H", len(infos), *infos)


def test_greeting_is_nbdmagic_ihaveopt_and_fixed_newstyle_no_zeroes() -> None:
    assert GREETING == b"NBDMAGIC" + b"IHAVEOPT" + b"\x00\x03"


def test_client_flags_known_bits_are_read() -> None:
    assert (
        parse_client_flags(b"\x00\x00\x00\x03") == ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES
    )
    assert parse_client_flags(b"\x00\x00\x00\x00") == ClientFlag(0)


def test_client_flags_with_unknown_bits_close_the_connection() -> None:
    with pytest.raises(Violation, match=r"^client flags 0x5 hold unknown bits 0x4$"):
        parse_client_flags(b"\x00\x00\x00\x05")


def test_option_header_is_read() -> None:
    assert parse_option_header(struct.pack(">QII", IHAVEOPT, 7, 12)) == (7, 12)


def test_option_header_with_a_bad_magic_closes() -> None:
    with pytest.raises(Violation, match=r"^option magic 0x4e42444d41474943 is not IHAVEOPT$"):
        parse_option_header(b"NBDMAGIC" + struct.pack(">II", 7, 0))


def test_option_header_longer_than_any_option_closes() -> None:
    data = struct.pack(">QII", IHAVEOPT, 99, MAX_OPTION_LENGTH + 1)
    with pytest.raises(Violation, match=r"^option 99 carries 65537 bytes: at most 65536$"):
        parse_option_header(data)


def test_info_request_is_read() -> None:
    assert parse_info_request(info_data(b"swap", 3, 1)) == InfoRequest("swap", (3, 1))
    assert parse_info_request(info_data(b"")) == InfoRequest("", ())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x00\x00", "option data of 3 bytes: at least 6"),
        (struct.pack(">I", 9) + b"ab\x00\x00", "name length 9 exceeds the option data (8 bytes)"),
        (info_data(b"swap", 3)[:-1], "1 information requests need 2 bytes, 1 follow"),
        (info_data(b"swap") + b"\x00", "0 information requests need 0 bytes, 1 follow"),
        (info_data(b"\xff\xfe"), "export name is not UTF-8"),
        (info_data(b"x" * 4097), "export name of 4097 bytes: at most 4096"),
    ],
)
def test_malformed_info_requests_are_err_invalid(data: bytes, message: str) -> None:
    with pytest.raises(OptionRefused) as refused:
        parse_info_request(data)
    assert (refused.value.reply, refused.value.message) == (Reply.ERR_INVALID, message)


def test_option_reply_carries_magic_option_type_length_and_data() -> None:
    assert option_reply(7, Reply.ERR_UNKNOWN, b"no") == (
        struct.pack(">QIII", 0x3E889045565A9, 7, 0x80000006, 2) + b"no"
    )


def test_export_name_reply_pads_with_124_zeroes_unless_no_zeroes() -> None:
    flags = TransmissionFlag.HAS_FLAGS | TransmissionFlag.SEND_FLUSH
    assert export_name_reply(SIZE, flags, no_zeroes=False) == struct.pack(">QH", SIZE, 5) + bytes(
        124
    )
    assert export_name_reply(SIZE, flags, no_zeroes=True) == struct.pack(">QH", SIZE, 5)


def test_request_header_is_read() -> None:
    data = header(Command.WRITE, offset=4096, length=512, flags=CommandFlag.FUA, cookie=99)
    assert parse_request(data) == Request(1, 1, 99, 4096, 512)


def test_request_with_a_bad_magic_closes() -> None:
    data = struct.pack(">IHHQQI", 0x12560953, 0, 0, 1, 0, 512)
    with pytest.raises(Violation, match=r"^request magic 0x12560953 is not NBD_REQUEST_MAGIC$"):
        parse_request(data)


@pytest.mark.parametrize(
    ("command", "flags", "offset", "length"),
    [
        (Command.READ, 0, 0, SIZE),
        (Command.WRITE, CommandFlag.FUA, SIZE - 1, 1),
        (Command.TRIM, 0, 0, SIZE),
        (Command.WRITE_ZEROES, CommandFlag.NO_HOLE | CommandFlag.FUA, 4096, 8192),
        (Command.FLUSH, CommandFlag.FUA, 0, 0),
        (Command.DISC, 0, 0, 0),
        (Command.READ, 0, SIZE, 0),
    ],
)
def test_requests_within_the_export_are_served(
    command: Command, flags: int, offset: int, length: int
) -> None:
    request = Request(flags, command, 1, offset, length)
    assert check_request(request, SIZE) is command


@pytest.mark.parametrize(
    ("request_", "errno", "message"),
    [
        (Request(0, 42, 1, 0, 0), Errno.EINVAL, "unknown command 42"),
        (Request(0, Command.CACHE, 1, 0, 4096), Errno.EINVAL, "command CACHE is not served"),
        (
            Request(CommandFlag.NO_HOLE, Command.WRITE, 1, 0, 4096),
            Errno.EINVAL,
            "flags 0x2 are not valid on WRITE",
        ),
        (
            Request(1 << 15, Command.READ, 1, 0, 4096),
            Errno.EINVAL,
            "flags 0x8000 are not valid on READ",
        ),
        (
            Request(CommandFlag.FAST_ZERO, Command.WRITE_ZEROES, 1, 0, 4096),
            Errno.EINVAL,
            "flags 0x10 are not valid on WRITE_ZEROES",
        ),
        (
            Request(0, Command.FLUSH, 1, 0, 1),
            Errno.EINVAL,
            "FLUSH with offset 0 and length 1: both must be 0",
        ),
        (
            Request(0, Command.READ, 1, 0, MAX_PAYLOAD + 1),
            Errno.EINVAL,
            "READ of 33554433 bytes: at most 33554432 per request",
        ),
        (
            Request(0, Command.WRITE, 1, 0, MAX_PAYLOAD + 1),
            Errno.EINVAL,
            "WRITE of 33554433 bytes: at most 33554432 per request",
        ),
        (
            Request(0, Command.READ, 1, SIZE - 4096, 8192),
            Errno.EINVAL,
            "READ of 8192 bytes at offset 1044480 ends past the export's 1048576 bytes",
        ),
        (
            Request(0, Command.TRIM, 1, SIZE, 1),
            Errno.EINVAL,
            "TRIM of 1 bytes at offset 1048576 ends past the export's 1048576 bytes",
        ),
        (
            Request(0, Command.WRITE, 1, SIZE, 512),
            Errno.ENOSPC,
            "WRITE of 512 bytes at offset 1048576 ends past the export's 1048576 bytes",
        ),
        (
            Request(0, Command.WRITE_ZEROES, 1, 2**64 - 1, 4096),
            Errno.ENOSPC,
            f"WRITE_ZEROES of 4096 bytes at offset {2**64 - 1} ends past the export's "
            "1048576 bytes",
        ),
    ],
)
def test_requests_a_server_must_refuse_name_their_error(
    request_: Request, errno: Errno, message: str
) -> None:
    with pytest.raises(RequestRefused) as refused:
        check_request(request_, SIZE)
    assert (refused.value.errno, refused.value.message) == (errno, message)


def test_simple_reply_is_magic_error_cookie() -> None:
    assert simple_reply(5, Errno.ENOSPC) == struct.pack(">IIQ", 0x67446698, 28, 5)
    assert simple_reply(2**64 - 1) == struct.pack(">IIQ", 0x67446698, 0, 2**64 - 1)
