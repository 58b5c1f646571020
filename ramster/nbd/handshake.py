"""Option haggling of the fixed-newstyle NBD handshake: which option is answered how.

`answer_option` takes one option as received and returns the bytes to send and what follows:
go on negotiating, upgrade to TLS, enter transmission on a chosen export, or close. OPT_GO,
OPT_INFO, OPT_LIST, OPT_EXPORT_NAME, OPT_ABORT and (where TLS is offered) OPT_STARTTLS are
served; every other option (STRUCTURED_REPLY, the metadata contexts, extended headers) is
answered ERR_UNSUP, so clients fall back to simple replies. An unknown export is ERR_UNKNOWN,
except after OPT_EXPORT_NAME, which cannot carry an error: the protocol says to close then.

Where TLS is offered it is required (the protocol's FORCEDTLS mode): until STARTTLS succeeds,
every option but STARTTLS and ABORT is ERR_TLS_REQD (and OPT_EXPORT_NAME closes), so a client
learns nothing of the exports in the clear.

Pure: no I/O. Not here: the codecs (`ramster.nbd.protocol`), the sockets (`ramster.nbd.server`).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ramster.errors import shown
from ramster.nbd.protocol import (
    MAX_PAYLOAD,
    MIN_BLOCK,
    PREFERRED_BLOCK,
    Info,
    Option,
    OptionRefused,
    Reply,
    TransmissionFlag,
    decode_name,
    export_name_reply,
    info_block_size,
    info_export,
    info_text,
    option_reply,
    parse_info_request,
    server_entry,
)

TRANSMISSION_FLAGS = (
    TransmissionFlag.HAS_FLAGS
    | TransmissionFlag.SEND_FLUSH
    | TransmissionFlag.SEND_FUA
    | TransmissionFlag.SEND_TRIM
    | TransmissionFlag.SEND_WRITE_ZEROES
    | TransmissionFlag.CAN_MULTI_CONN
)
"""What every export offers. SEND_FLUSH and SEND_FUA: a write is acknowledged before its second
copy is made (`ramster.nbd.volume`), a FLUSH or a FUA write waits for those copies.
CAN_MULTI_CONN: there is no per-connection cache, a write is in the store before it is
acknowledged and a FLUSH waits for the copies of the export's writes on every connection."""


@dataclass(frozen=True, slots=True)
class ExportInfo:
    """What the handshake tells of an export."""

    name: str
    size: int
    description: str = ""


class Catalogue(Protocol):
    """The exports a client may choose from."""

    def find(self, name: str) -> ExportInfo | None: ...

    def listing(self) -> Sequence[ExportInfo]: ...


class Tls(enum.Enum):
    """Where a connection stands with TLS."""

    NOT_OFFERED = "not offered"
    """A unix socket, or a node without TLS: STARTTLS is ERR_UNSUP."""
    REQUIRED = "required"
    """Offered and required, not negotiated yet."""
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Answer:
    """The bytes answering an option, and what follows: an upgrade to TLS (`starttls`, once the
    replies are sent), transmission on `chosen` (a name), a close (`close`, with `reason` for the
    log), or else more options."""

    replies: bytes
    chosen: str | None = None
    close: bool = False
    reason: str = ""
    starttls: bool = False


def answer_option(
    option: int, data: bytes, catalogue: Catalogue, no_zeroes: bool, tls: Tls = Tls.NOT_OFFERED
) -> Answer:
    """The answer to `option` with `data`, given the exports of `catalogue` (those this client
    may see), whether the client agreed to NO_ZEROES, and where it stands with `tls`."""
    try:
        return _answer(option, data, catalogue, no_zeroes, tls)
    except OptionRefused as refused:
        return Answer(option_reply(option, refused.reply, refused.message.encode()))


def _answer(option: int, data: bytes, catalogue: Catalogue, no_zeroes: bool, tls: Tls) -> Answer:
    if option == Option.STARTTLS and tls is not Tls.NOT_OFFERED:
        if tls is Tls.DONE:
            raise OptionRefused(Reply.ERR_INVALID, "TLS is already negotiated")
        if data:
            raise OptionRefused(Reply.ERR_INVALID, f"OPT_STARTTLS carries {len(data)} bytes: none")
        return Answer(option_reply(option, Reply.ACK), starttls=True)
    if tls is Tls.REQUIRED and option != Option.ABORT:
        if option == Option.EXPORT_NAME:
            return Answer(b"", close=True, reason="OPT_EXPORT_NAME before STARTTLS")
        raise OptionRefused(Reply.ERR_TLS_REQD, "this server requires TLS: send OPT_STARTTLS")
    if option == Option.EXPORT_NAME:
        name = _name_or_none(data)
        export = catalogue.find(name) if name is not None else None
        if export is None:  # the one option that cannot answer an error
            return Answer(
                b"", close=True, reason=f"OPT_EXPORT_NAME of unknown export {_shown(data)}"
            )
        return Answer(export_name_reply(export.size, TRANSMISSION_FLAGS, no_zeroes), export.name)
    if option == Option.ABORT:  # its data, if any, is ignored (proto.md)
        return Answer(option_reply(option, Reply.ACK), close=True, reason="the client aborted")
    if option == Option.LIST:
        if data:
            raise OptionRefused(Reply.ERR_INVALID, f"OPT_LIST carries {len(data)} bytes: none")
        entries = [
            option_reply(option, Reply.SERVER, server_entry(export.name, export.description))
            for export in catalogue.listing()
        ]
        return Answer(b"".join((*entries, option_reply(option, Reply.ACK))))
    if option in (Option.INFO, Option.GO):
        return _info(option, data, catalogue)
    try:
        known = Option(option).name
    except ValueError:
        known = str(option)
    raise OptionRefused(Reply.ERR_UNSUP, f"option {known} is not supported")


def _info(option: int, data: bytes, catalogue: Catalogue) -> Answer:
    request = parse_info_request(data)
    export = catalogue.find(request.name)
    if export is None:
        raise OptionRefused(Reply.ERR_UNKNOWN, f"no export named {shown(request.name)}")
    infos = [info_export(export.size, TRANSMISSION_FLAGS)]
    # Block sizes are sent whether asked or not: a client must ignore what it did not ask for,
    # and the preferred size tells every client that 4 KiB writes avoid read-modify-write.
    infos.append(info_block_size(MIN_BLOCK, PREFERRED_BLOCK, MAX_PAYLOAD))
    if Info.NAME in request.infos:
        infos.append(info_text(Info.NAME, export.name))
    if Info.DESCRIPTION in request.infos and export.description:
        infos.append(info_text(Info.DESCRIPTION, export.description))
    replies = b"".join(option_reply(option, Reply.INFO, info) for info in infos)
    ack = option_reply(option, Reply.ACK)
    return Answer(replies + ack, export.name if option == Option.GO else None)


def _name_or_none(data: bytes) -> str | None:
    try:
        return decode_name(data)
    except OptionRefused:
        return None


def _shown(data: bytes) -> str:
    return shown(data.decode(errors="replace"))
