"""Option haggling on plain bytes: each option's replies and what follows (`answer_option`)."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from ramster.nbd.handshake import TRANSMISSION_FLAGS, Answer, ExportInfo, Tls, answer_option
from ramster.nbd.protocol import Info, Option, Reply

SWAP = ExportInfo("swap", 1 << 30, "RAMster export")


class Exports:
    def __init__(self, *exports: ExportInfo) -> None:
        self._exports = {export.name: export for export in exports}

    def find(self, name: str) -> ExportInfo | None:
        return self._exports.get(name)

    def listing(self) -> Sequence[ExportInfo]:
        return list(self._exports.values())


def replies(data: bytes) -> list[tuple[int, int, bytes]]:
    """The option replies in `data`: (option, reply type, data) each."""
    found = []
    while data:
        magic, option, reply, length = struct.unpack_from(">QIII", data)
        assert magic == 0x3E889045565A9
        found.append((option, reply, data[20 : 20 + length]))
        data = data[20 + length :]
    return found


def go_data(name: bytes, *infos: int) -> bytes:
    return struct.pack(">I", len(name)) + name + struct.pack(f">H{len(infos)}H", len(infos), *infos)


def test_go_answers_export_block_size_and_asked_name_then_ack_and_chooses() -> None:
    answer = answer_option(
        Option.GO, go_data(b"swap", Info.NAME, Info.BLOCK_SIZE), Exports(SWAP), False
    )
    assert answer.chosen == "swap"
    assert not answer.close
    assert replies(answer.replies) == [
        (7, Reply.INFO, struct.pack(">HQH", 0, 1 << 30, TRANSMISSION_FLAGS)),
        (7, Reply.INFO, struct.pack(">HIII", 3, 1, 4096, 32 << 20)),
        (7, Reply.INFO, b"\x00\x01swap"),
        (7, Reply.ACK, b""),
    ]


def test_transmission_flags_offer_flush_fua_trim_write_zeroes_and_multi_conn() -> None:
    assert int(TRANSMISSION_FLAGS) == 0b1_0110_1101


def test_info_answers_like_go_but_chooses_nothing() -> None:
    answer = answer_option(Option.INFO, go_data(b"swap", Info.DESCRIPTION), Exports(SWAP), False)
    assert answer == Answer(answer.replies)
    assert [reply[1:] for reply in replies(answer.replies)][2:] == [
        (Reply.INFO, b"\x00\x02RAMster export"),
        (Reply.ACK, b""),
    ]


def test_go_to_an_unknown_export_is_err_unknown_and_negotiation_goes_on() -> None:
    answer = answer_option(Option.GO, go_data(b"nope"), Exports(SWAP), False)
    assert answer == Answer(answer.replies)
    assert replies(answer.replies) == [(7, Reply.ERR_UNKNOWN, b"no export named 'nope'")]


def test_malformed_go_is_err_invalid() -> None:
    answer = answer_option(Option.GO, b"\x00\x00\x00\x09ab\x00\x00", Exports(SWAP), False)
    assert replies(answer.replies) == [
        (7, Reply.ERR_INVALID, b"name length 9 exceeds the option data (8 bytes)")
    ]


def test_list_names_every_export_then_acks() -> None:
    other = ExportInfo("db", 4096)
    answer = answer_option(Option.LIST, b"", Exports(SWAP, other), False)
    assert replies(answer.replies) == [
        (3, Reply.SERVER, b"\x00\x00\x00\x04swapRAMster export"),
        (3, Reply.SERVER, b"\x00\x00\x00\x02db"),
        (3, Reply.ACK, b""),
    ]


def test_list_with_data_is_err_invalid() -> None:
    answer = answer_option(Option.LIST, b"x", Exports(SWAP), False)
    assert replies(answer.replies) == [(3, Reply.ERR_INVALID, b"OPT_LIST carries 1 bytes: none")]


def test_abort_acks_and_closes() -> None:
    answer = answer_option(Option.ABORT, b"ignored", Exports(SWAP), False)
    assert (replies(answer.replies), answer.close) == ([(2, Reply.ACK, b"")], True)


def test_export_name_answers_size_and_flags_and_chooses() -> None:
    padded = answer_option(Option.EXPORT_NAME, b"swap", Exports(SWAP), no_zeroes=False)
    assert padded == Answer(struct.pack(">QH", 1 << 30, TRANSMISSION_FLAGS) + bytes(124), "swap")
    bare = answer_option(Option.EXPORT_NAME, b"swap", Exports(SWAP), no_zeroes=True)
    assert bare.replies == struct.pack(">QH", 1 << 30, TRANSMISSION_FLAGS)


def test_export_name_of_an_unknown_export_closes_without_a_reply() -> None:
    answer = answer_option(Option.EXPORT_NAME, b"nope", Exports(SWAP), False)
    assert answer == Answer(b"", close=True, reason="OPT_EXPORT_NAME of unknown export 'nope'")


def test_unsupported_and_unknown_options_are_err_unsup() -> None:
    for option, name in (
        (Option.STARTTLS, b"STARTTLS"),
        (Option.STRUCTURED_REPLY, b"STRUCTURED_REPLY"),
        (99, b"99"),
    ):
        answer = answer_option(option, b"", Exports(SWAP), False)
        assert replies(answer.replies) == [
            (option, Reply.ERR_UNSUP, b"option " + name + b" is not supported")
        ]


def test_where_tls_is_required_every_option_but_starttls_and_abort_is_err_tls_reqd() -> None:
    exports = Exports(SWAP)
    for option in (Option.LIST, Option.GO, Option.INFO, Option.STRUCTURED_REPLY):
        answer = answer_option(option, go_data(b"swap"), exports, False, Tls.REQUIRED)
        assert replies(answer.replies) == [
            (option, Reply.ERR_TLS_REQD, b"this server requires TLS: send OPT_STARTTLS")
        ]
    before = answer_option(Option.EXPORT_NAME, b"swap", exports, False, Tls.REQUIRED)
    assert before == Answer(b"", close=True, reason="OPT_EXPORT_NAME before STARTTLS")
    aborted = answer_option(Option.ABORT, b"", exports, False, Tls.REQUIRED)
    assert aborted.close


def test_starttls_is_acked_once_where_offered() -> None:
    exports = Exports(SWAP)
    upgrade = answer_option(Option.STARTTLS, b"", exports, False, Tls.REQUIRED)
    assert (replies(upgrade.replies), upgrade.starttls) == ([(5, Reply.ACK, b"")], True)
    again = answer_option(Option.STARTTLS, b"", exports, False, Tls.DONE)
    assert replies(again.replies) == [(5, Reply.ERR_INVALID, b"TLS is already negotiated")]
    with_data = answer_option(Option.STARTTLS, b"x", exports, False, Tls.REQUIRED)
    assert replies(with_data.replies) == [
        (5, Reply.ERR_INVALID, b"OPT_STARTTLS carries 1 bytes: none")
    ]
    done = answer_option(Option.GO, go_data(b"swap"), exports, False, Tls.DONE)
    assert done.chosen == "swap"
