"""The NBD wire protocol (NetworkBlockDevice/nbd doc/proto.md): constants, and the codecs of the
fixed-newstyle handshake and of the transmission phase with simple replies.

Pure: bytes in, values out, values in, bytes out; no I/O, no asyncio. Parsing is strict, and
every input it refuses raises one of three named errors, each telling the server what to do:
`Violation` (close the connection: nothing after it can be trusted, e.g. a bad magic),
`OptionRefused` (answer the option with an error reply and go on negotiating) and
`RequestRefused` (answer the request with an NBD error and go on serving).

Not here: which option is answered how (`ramster.nbd.handshake`), the sockets
(`ramster.nbd.server`), what an export stores (`ramster.nbd.exports`).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

NBDMAGIC = 0x4E42444D41474943
"""'NBDMAGIC', the first word of the server's greeting."""
IHAVEOPT = 0x49484156454F5054
"""'IHAVEOPT': the second word of the greeting, and the first of every option."""
OPTION_REPLY_MAGIC = 0x3E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698


class HandshakeFlag(enum.IntFlag):
    FIXED_NEWSTYLE = 1 << 0
    NO_ZEROES = 1 << 1


class ClientFlag(enum.IntFlag):
    FIXED_NEWSTYLE = 1 << 0
    NO_ZEROES = 1 << 1


class TransmissionFlag(enum.IntFlag):
    HAS_FLAGS = 1 << 0
    READ_ONLY = 1 << 1
    SEND_FLUSH = 1 << 2
    SEND_FUA = 1 << 3
    ROTATIONAL = 1 << 4
    SEND_TRIM = 1 << 5
    SEND_WRITE_ZEROES = 1 << 6
    SEND_DF = 1 << 7
    CAN_MULTI_CONN = 1 << 8
    SEND_RESIZE = 1 << 9
    SEND_CACHE = 1 << 10
    SEND_FAST_ZERO = 1 << 11


class Option(enum.IntEnum):
    EXPORT_NAME = 1
    ABORT = 2
    LIST = 3
    PEEK_EXPORT = 4
    STARTTLS = 5
    INFO = 6
    GO = 7
    STRUCTURED_REPLY = 8
    LIST_META_CONTEXT = 9
    SET_META_CONTEXT = 10
    EXTENDED_HEADERS = 11


class Reply(enum.IntEnum):
    ACK = 1
    SERVER = 2
    INFO = 3
    META_CONTEXT = 4
    ERR_UNSUP = (1 << 31) + 1
    ERR_POLICY = (1 << 31) + 2
    ERR_INVALID = (1 << 31) + 3
    ERR_PLATFORM = (1 << 31) + 4
    ERR_TLS_REQD = (1 << 31) + 5
    ERR_UNKNOWN = (1 << 31) + 6
    ERR_SHUTDOWN = (1 << 31) + 7
    ERR_BLOCK_SIZE_REQD = (1 << 31) + 8
    ERR_TOO_BIG = (1 << 31) + 9


class Info(enum.IntEnum):
    EXPORT = 0
    NAME = 1
    DESCRIPTION = 2
    BLOCK_SIZE = 3


class Command(enum.IntEnum):
    READ = 0
    WRITE = 1
    DISC = 2
    FLUSH = 3
    TRIM = 4
    CACHE = 5
    WRITE_ZEROES = 6
    BLOCK_STATUS = 7
    RESIZE = 8


class CommandFlag(enum.IntFlag):
    FUA = 1 << 0
    NO_HOLE = 1 << 1
    DF = 1 << 2
    REQ_ONE = 1 << 3
    FAST_ZERO = 1 << 4
    PAYLOAD_LEN = 1 << 5


class Errno(enum.IntEnum):
    """The error values of a reply (the protocol's own numbers, not the host's errno)."""

    EPERM = 1
    EIO = 5
    ENOMEM = 12
    EINVAL = 22
    ENOSPC = 28
    EOVERFLOW = 75
    ENOTSUP = 95
    ESHUTDOWN = 108


MAX_STRING = 4096
"""Export names and other strings of the protocol are at most this many bytes."""
MAX_OPTION_LENGTH = 65536
"""Option data longer than this is no option of ours (the longest, OPT_GO, is a name and a few
info requests): the connection is closed rather than the data read."""
MAX_PAYLOAD = 32 << 20
"""The largest READ or WRITE served: the 32 MiB every client is told to stay within (proto.md,
"Size constraints"), advertised in NBD_INFO_BLOCK_SIZE."""
PREFERRED_BLOCK = 4096
"""The page size: smaller or unaligned writes cost a read-modify-write."""
MIN_BLOCK = 1
"""Any alignment is served (by read-modify-write), as the protocol's default."""

GREETING = struct.pack(
    ">QQH", NBDMAGIC, IHAVEOPT, HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES
)
CLIENT_FLAGS = struct.Struct(">I")
OPTION_HEADER = struct.Struct(">QII")
REQUEST = struct.Struct(">IHHQQI")
_OPTION_REPLY = struct.Struct(">QIII")
_SIMPLE_REPLY = struct.Struct(">IIQ")


class Violation(Exception):
    """The peer broke a rule the rest of the connection depends on: close it, saying why."""


class OptionRefused(Exception):
    """An option answered with the error reply `reply`; the message goes with it."""

    def __init__(self, reply: Reply, message: str) -> None:
        super().__init__(message)
        self.reply = reply
        self.message = message


class RequestRefused(Exception):
    """A request answered with the error `errno`; the message is for the server's log."""

    def __init__(self, errno: Errno, message: str) -> None:
        super().__init__(message)
        self.errno = errno
        self.message = message


def parse_client_flags(data: bytes) -> ClientFlag:
    """The client's flags; a flag the server did not offer is a violation (the spec's MUST)."""
    (flags,) = CLIENT_FLAGS.unpack(data)
    unknown = flags & ~int(ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES)
    if unknown:
        raise Violation(f"client flags {flags:#x} hold unknown bits {unknown:#x}")
    return ClientFlag(flags)


def parse_option_header(data: bytes) -> tuple[int, int]:
    """(option, data length) of an option header; a bad magic or an oversized length closes."""
    magic, option, length = OPTION_HEADER.unpack(data)
    if magic != IHAVEOPT:
        raise Violation(f"option magic {magic:#x} is not IHAVEOPT")
    if length > MAX_OPTION_LENGTH:
        raise Violation(f"option {option} carries {length} bytes: at most {MAX_OPTION_LENGTH}")
    return option, length


def decode_name(data: bytes, what: str = "export name") -> str:
    """A protocol string: UTF-8, at most `MAX_STRING` bytes, else ERR_INVALID."""
    if len(data) > MAX_STRING:
        raise OptionRefused(Reply.ERR_INVALID, f"{what} of {len(data)} bytes: at most {MAX_STRING}")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise OptionRefused(Reply.ERR_INVALID, f"{what} is not UTF-8") from None


@dataclass(frozen=True, slots=True)
class InfoRequest:
    """The data of OPT_INFO and OPT_GO: an export name and the information asked for."""

    name: str
    infos: tuple[int, ...]


def parse_info_request(data: bytes) -> InfoRequest:
    """OPT_INFO / OPT_GO data: 32-bit name length, name, 16-bit count, 16-bit requests."""
    if len(data) < 6:
        raise OptionRefused(Reply.ERR_INVALID, f"option data of {len(data)} bytes: at least 6")
    (name_length,) = struct.unpack_from(">I", data)
    if name_length > len(data) - 6:
        raise OptionRefused(
            Reply.ERR_INVALID,
            f"name length {name_length} exceeds the option data ({len(data)} bytes)",
        )
    name = decode_name(data[4 : 4 + name_length])
    (count,) = struct.unpack_from(">H", data, 4 + name_length)
    rest = data[6 + name_length :]
    if len(rest) != 2 * count:
        raise OptionRefused(
            Reply.ERR_INVALID,
            f"{count} information requests need {2 * count} bytes, {len(rest)} follow",
        )
    return InfoRequest(name, struct.unpack(f">{count}H", rest))


def option_reply(option: int, reply: Reply, data: bytes = b"") -> bytes:
    return _OPTION_REPLY.pack(OPTION_REPLY_MAGIC, option, reply, len(data)) + data


def server_entry(name: str, description: str = "") -> bytes:
    """The data of a REP_SERVER reply (one export of OPT_LIST)."""
    encoded = name.encode()
    return struct.pack(">I", len(encoded)) + encoded + description.encode()


def info_export(size: int, flags: TransmissionFlag) -> bytes:
    return struct.pack(">HQH", Info.EXPORT, size, flags)


def info_text(info: Info, text: str) -> bytes:
    """NBD_INFO_NAME or NBD_INFO_DESCRIPTION."""
    return struct.pack(">H", info) + text.encode()


def info_block_size(minimum: int, preferred: int, maximum: int) -> bytes:
    return struct.pack(">HIII", Info.BLOCK_SIZE, minimum, preferred, maximum)


def export_name_reply(size: int, flags: TransmissionFlag, no_zeroes: bool) -> bytes:
    """What ends OPT_EXPORT_NAME: size, flags, and 124 zero bytes unless NO_ZEROES was agreed."""
    return struct.pack(">QH", size, flags) + (b"" if no_zeroes else bytes(124))


@dataclass(frozen=True, slots=True)
class Request:
    """One request header; `command` and `flags` are as received (`check_request` judges them)."""

    flags: int
    command: int
    cookie: int
    offset: int
    length: int


def parse_request(data: bytes) -> Request:
    """A request header; a bad magic closes (the stream cannot be resynchronised)."""
    magic, flags, command, cookie, offset, length = REQUEST.unpack(data)
    if magic != REQUEST_MAGIC:
        raise Violation(f"request magic {magic:#x} is not NBD_REQUEST_MAGIC")
    return Request(flags, command, cookie, offset, length)


_ALLOWED_FLAGS = {
    Command.READ: CommandFlag.FUA,
    Command.WRITE: CommandFlag.FUA,
    Command.FLUSH: CommandFlag.FUA,
    Command.TRIM: CommandFlag.FUA,
    Command.WRITE_ZEROES: CommandFlag.FUA | CommandFlag.NO_HOLE,
    Command.DISC: CommandFlag.FUA,
}
"""The flags each served command accepts: FUA on every one (clients are known to set it on any,
and a server offering SEND_FUA must accept it), NO_HOLE on WRITE_ZEROES."""

_PAST_THE_END = {Command.WRITE: Errno.ENOSPC, Command.WRITE_ZEROES: Errno.ENOSPC}
"""Writing past the end is ENOSPC, reading or trimming there EINVAL (proto.md, Error values)."""


def check_request(request: Request, size: int) -> Command:
    """The command of `request` if an export of `size` bytes serves it, else `RequestRefused`:
    unknown commands and flags, payloads over `MAX_PAYLOAD`, ranges past the end."""
    try:
        command = Command(request.command)
    except ValueError:
        raise RequestRefused(Errno.EINVAL, f"unknown command {request.command}") from None
    allowed = _ALLOWED_FLAGS.get(command)
    if allowed is None:
        raise RequestRefused(Errno.EINVAL, f"command {command.name} is not served")
    unknown = request.flags & ~int(allowed)  # IntFlag's ~ keeps only its own bits
    if unknown:
        raise RequestRefused(Errno.EINVAL, f"flags {unknown:#x} are not valid on {command.name}")
    if command in (Command.FLUSH, Command.DISC):
        if request.offset or request.length:
            raise RequestRefused(
                Errno.EINVAL,
                f"{command.name} with offset {request.offset} and length {request.length}: "
                "both must be 0",
            )
        return command
    if command in (Command.READ, Command.WRITE) and request.length > MAX_PAYLOAD:
        raise RequestRefused(
            Errno.EINVAL,
            f"{command.name} of {request.length} bytes: at most {MAX_PAYLOAD} per request",
        )
    if request.offset + request.length > size:
        raise RequestRefused(
            _PAST_THE_END.get(command, Errno.EINVAL),
            f"{command.name} of {request.length} bytes at offset {request.offset} ends past "
            f"the export's {size} bytes",
        )
    return command


def simple_reply(cookie: int, error: int = 0) -> bytes:
    return _SIMPLE_REPLY.pack(SIMPLE_REPLY_MAGIC, error, cookie)
