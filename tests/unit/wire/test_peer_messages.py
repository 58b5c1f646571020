"""The Peer page messages without a node: what an origin builds in either form is read by a
holder's checks as the same pages, and an origin refuses a lean answer that does not add up."""

from __future__ import annotations

from zlib import crc32

import pytest

from ramster.api.v1 import peer_pb2, tmem_pb2
from ramster.errors import InternalError, InvalidArgument
from ramster.page import PackedPage, pack_page
from ramster.remote.handles import RemoteFlush, RemoteRef, Shipment
from ramster.rpc import foreign_pages
from ramster.trust.seal import KEY_BYTES, OriginSeal
from ramster.wire.messages import packed_encoding
from ramster.wire.peer_messages import (
    batch_answers,
    flush_batch_request,
    flush_request,
    get_batch_request,
    get_batch_response,
    get_request,
    get_response,
    page_answers,
    put_batch_request,
    remote_page,
)

ORIGIN = peer_pb2.Origin(node_number=2, epoch="00062a0b1c2d3e4f")
VERSION = 1_700_000_000_000_000


def shipment(index: int, page: PackedPage, oid: tuple[int, int, int] = (9, 0, 0)) -> Shipment:
    return Shipment(
        pool_uid=3 + index % 2,
        oid=oid,
        index=index,
        version=VERSION + index,
        obj_id=1,
        slot=index,
        persistent=index % 2 == 0,
        page=page,
    )


def ref(index: int) -> RemoteRef:
    return RemoteRef(
        pool_uid=3,
        oid=(9, 0, 0),
        index=index,
        version=1,
        node=1,
        obj_id=1,
        persistent=True,
        page_size=4096,
    )


SHIPMENTS = [
    shipment(0, pack_page(b"a" * 2048 + b"b" * 2048)),
    shipment(1, pack_page(b"\x00" * 4096), oid=(1, 2, 3)),
    shipment(2, pack_page(bytes(range(256)) * 16)),
]


def test_a_holder_reads_the_same_pages_from_either_form() -> None:
    payloads = [(s.page.payload, packed_encoding(s.page)) for s in SHIPMENTS]
    per_page = [remote_page(s, *p) for s, p in zip(SHIPMENTS, payloads, strict=True)]
    lean = put_batch_request(ORIGIN, "", [], SHIPMENTS, payloads)
    wire = peer_pb2.PeerPutBatchRequest.FromString(lean.SerializeToString())
    read = foreign_pages.pages_of_batch(wire)
    assert read == foreign_pages.pages_of(per_page)
    columns = zip(
        read.pool_uids, read.persistent, read.keys, read.versions, read.pages, strict=True
    )
    assert list(columns) == [
        (s.pool_uid, s.persistent, (s.oid, s.index), s.version, s.page) for s in SHIPMENTS
    ]
    # Only the second page has oid words beyond the first: both arrays are sent.
    assert list(wire.keys.oid_word1) == [0, 2, 0]


def sealed_payloads() -> list[tuple[bytes, tmem_pb2.PageEncoding]]:
    """SHIPMENTS as a sealing origin sends them."""
    seal = OriginSeal("origin", b"k" * KEY_BYTES)
    return [(seal.seal(s, s.page), tmem_pb2.PAGE_ENCODING_SEALED) for s in SHIPMENTS]


def test_a_put_without_checksums_carries_none_and_reads_as_the_same_sealed_pages() -> None:
    """An origin that seals its pages over TLS sends no CRC-32s; a holder that takes that reads
    the very pages it reads from the put with them."""
    payloads = sealed_payloads()
    checked = put_batch_request(ORIGIN, "", [], SHIPMENTS, payloads)
    skipped = put_batch_request(ORIGIN, "", [], SHIPMENTS, payloads, skip_checksums=True)
    assert list(checked.checksums) == [crc32(data) for data, _ in payloads]
    assert not checked.skip_checksums
    assert list(skipped.checksums) == []
    assert skipped.skip_checksums
    read = foreign_pages.pages_of_batch(skipped, unchecked=True)
    assert read == foreign_pages.pages_of_batch(checked)
    assert [page.payload for page in read.pages] == [data for data, _ in payloads]


def test_a_packed_page_without_a_checksum_is_refused_naming_it() -> None:
    payloads = sealed_payloads()
    payloads[1] = (SHIPMENTS[1].page.payload, packed_encoding(SHIPMENTS[1].page))
    skipped = put_batch_request(ORIGIN, "", [], SHIPMENTS, payloads, skip_checksums=True)
    with pytest.raises(InvalidArgument) as refused:
        foreign_pages.pages_of_batch(skipped, unchecked=True)
    assert str(refused.value) == (
        "pages[1].checksum is missing (skip_checksums) for a page of encoding "
        "PAGE_ENCODING_SAME_FILLED: expected PAGE_ENCODING_SEALED, the only pages that may come "
        "without one"
    )
    assert refused.value.field_name == "pages[1].checksum"


def test_a_put_that_skips_checksums_yet_sends_some_is_refused() -> None:
    request = put_batch_request(ORIGIN, "", [], SHIPMENTS, sealed_payloads())
    request.skip_checksums = True
    with pytest.raises(InvalidArgument) as refused:
        foreign_pages.pages_of_batch(request, unchecked=True)
    assert str(refused.value) == "checksums has 3 entries with skip_checksums: expected none"


@pytest.mark.parametrize("proven", [False, True], ids=["no-tls", "node"])
def test_only_a_caller_proven_a_node_may_skip_checksums(proven: bool) -> None:
    assert foreign_pages.unchecked_puts(False, proven) is False
    if proven:
        assert foreign_pages.unchecked_puts(True, proven) is True
        return
    with pytest.raises(InvalidArgument) as refused:
        foreign_pages.unchecked_puts(True, proven)
    assert str(refused.value) == (
        "skip_checksums is true on a connection that proves no node (no TLS): expected false, "
        "a checksum for each page"
    )


def test_an_origin_reads_the_same_answers_from_either_form() -> None:
    answers = [(SHIPMENTS[0].page, 5), None, (SHIPMENTS[1].page, 7)]
    lean = get_batch_response(answers)
    per_page = get_response(answers)
    assert batch_answers(lean, 3, node=4) == page_answers(per_page)
    assert batch_answers(lean, 3, node=4)[1] is None
    requests = get_request(ORIGIN, [ref(0), ref(1)]), get_batch_request(ORIGIN, [ref(0), ref(1)])
    assert [k.index for k in requests[0].keys] == list(requests[1].keys.indexes) == [0, 1]
    assert not requests[1].skip_checksums


def test_an_answer_without_checksums_is_the_same_answer_with_each_checksum_0() -> None:
    answers = [(SHIPMENTS[0].page, 5), None, (SHIPMENTS[1].page, 7)]
    checked, skipped = get_batch_response(answers), get_batch_response(answers, checksums=False)
    assert list(checked.checksums) == [
        crc32(SHIPMENTS[0].page.payload),
        0,
        crc32(SHIPMENTS[1].page.payload),
    ]
    assert list(skipped.checksums) == [0, 0, 0]
    skipped.checksums[:] = checked.checksums
    assert skipped == checked
    assert get_batch_request(ORIGIN, [ref(0)], skip_checksums=True).skip_checksums


@pytest.mark.parametrize(
    ("change", "counts", "added"),
    [
        ({"lengths": [5]}, "1, 3, 3, 3", 5),
        ({"versions": [1, 2]}, "3, 3, 2, 3", None),
        ({"checksums": [0] * 4}, "3, 3, 3, 4", None),
        ({"data": b"x"}, "3, 3, 3, 3", None),
    ],
)
def test_a_lean_answer_that_does_not_add_up_is_an_error_not_pages(
    change: dict[str, object], counts: str, added: int | None
) -> None:
    answer = get_batch_response([(SHIPMENTS[0].page, 5), None, (SHIPMENTS[2].page, 7)])
    total = len(answer.data)
    for name, value in change.items():
        answer.ClearField(name)
        if isinstance(value, bytes):
            answer.data = value
        else:
            getattr(answer, name).extend(value)
    lengths = added if added is not None else total
    data = len(answer.data)
    with pytest.raises(InternalError) as raised:
        batch_answers(answer, 3, node=4)
    assert raised.value.message == (
        f"node 4 answered 3 keys malformed: {counts} lengths, encodings, versions and "
        f"checksums; lengths adding up to {lengths} bytes, data of {data}"
    )


def test_a_holder_reads_the_same_flushes_from_either_form() -> None:
    flushes = [
        RemoteFlush(4, 3, (9, 0, 0), 0, VERSION),
        RemoteFlush(4, 5, (1, 2, 3), 7, 0),
        RemoteFlush(4, 3, (9, 0, 0), 2**32 - 1, VERSION + 1),
    ]
    per_page = peer_pb2.PeerFlushPagesRequest.FromString(
        flush_request(ORIGIN, flushes).SerializeToString()
    )
    lean = peer_pb2.PeerFlushPageBatchRequest.FromString(
        flush_batch_request(ORIGIN, flushes).SerializeToString()
    )
    expected = [
        (3, (9, 0, 0), 0, VERSION),
        (5, (1, 2, 3), 7, 0),
        (3, (9, 0, 0), 2**32 - 1, VERSION + 1),
    ]
    assert foreign_pages.flush_keys_of(per_page) == expected
    assert foreign_pages.flush_keys_of_batch(lean) == expected
    assert (per_page.origin, lean.origin) == (ORIGIN, ORIGIN)
    assert list(lean.keys.oid_word1) == [0, 2, 0]  # sent: one oid has a second word
