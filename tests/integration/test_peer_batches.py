"""The lean Peer page calls (`Peer/PutPageBatch`, `Peer/GetPageBatch`, `Peer/FlushPageBatch`)
against a real node.

A holder checks a lean batch page by page exactly as it checks `Peer/PutPages` (one function):
each malformed page is refused with the same text in both forms, naming ``pages[n]``; only what
the packing can get wrong has refusals of its own. An origin's `PeerLink` uses the lean calls
with a holder whose Hello announced them and the per-page calls with one whose Hello did not (a
holder of an earlier release, played by `tests.support.peer_relay.PeerRelay` in front of the
real node), reads back exact pages, sealed or not, one packed with a zstd dictionary among them
(a holder never needs the dictionary), and takes a damaged copy for a lost one.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import grpc
import lz4.block
import pytest

from ramster.api.v1 import peer_pb2, tmem_pb2
from ramster.page import ZSTD, Codec, PackedPage, pack_page
from ramster.page_dictionary import PageDictionary
from ramster.remote.handles import RemoteFlush, RemoteRef, Shipment
from ramster.rpc.peer_link import PeerLink
from ramster.tmem.keys import PoolSpec
from ramster.tmem.pool import PoolRecord
from ramster.trust.seal import KEY_BYTES, OriginSeal
from ramster.zcache.dictionaries import Samples, Training, train
from tests.support.cluster import record_page
from tests.support.nodes import NodeProcess
from tests.support.peer_relay import PeerRelay
from tests.support.wire import Answer, RawNode

INVALID = grpc.StatusCode.INVALID_ARGUMENT
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
U64_MAX = 2**64 - 1
ALL_ONES = f"({U64_MAX}, {U64_MAX}, {U64_MAX})"
PEER_EPOCH = "00062a0b1c2d3e4f"
ORIGIN = peer_pb2.Origin(node_number=2, epoch=PEER_EPOCH)
VERSION_RULE = "1 up to this node's clock plus one hour, in microseconds since 1970"
LZ4, SAME = tmem_pb2.PAGE_ENCODING_LZ4, tmem_pb2.PAGE_ENCODING_SAME_FILLED
RAW, SEALED = tmem_pb2.PAGE_ENCODING_UNSPECIFIED, tmem_pb2.PAGE_ENCODING_SEALED
STORED = tmem_pb2.PUT_STATUS_STORED


def page(n: int) -> bytes:
    """A distinct, compressible page of 4 KiB."""
    return (f"page {n:6d} ".encode() * 342)[:4096]


def lz4_of(data: bytes) -> bytes:
    block: bytes = lz4.block.compress(data, store_size=False)
    return block


def peer_page(index: int, version: int = 1, **fields: Any) -> peer_pb2.RemotePage:
    """A well-formed persistent page of origin pool 1, object 5 (an lz4 block with its
    checksum), `fields` changed; the checksum is that of its data unless `fields` names one."""
    message = peer_pb2.RemotePage(
        pool=1,
        persistent=True,
        oid=tmem_pb2.Oid(word0=5),
        index=index,
        version=version,
        data=lz4_of(page(index)),
        encoding=LZ4,
        page_size=4096,
    )
    message.checksum = zlib.crc32(message.data)
    for name, value in fields.items():
        if name == "oid":
            message.oid.CopyFrom(value)
        else:
            setattr(message, name, value)
    if "checksum" not in fields:
        message.checksum = zlib.crc32(message.data)
    return message


def lean_of(pages: Sequence[peer_pb2.RemotePage], **fields: Any) -> peer_pb2.PeerPutBatchRequest:
    """`pages` in the lean form, written here field by field from the proto's comments."""
    request = peer_pb2.PeerPutBatchRequest(
        origin=ORIGIN,
        keys=tmem_pb2.KeyBatch(
            oid_word0=[p.oid.word0 for p in pages],
            oid_word1=[p.oid.word1 for p in pages],
            oid_word2=[p.oid.word2 for p in pages],
            indexes=[p.index for p in pages],
        ),
        pool_uids=[p.pool for p in pages],
        persistent=[p.persistent for p in pages],
        versions=[p.version for p in pages],
        encodings=[p.encoding for p in pages],
        page_sizes=[p.page_size for p in pages],
        checksums=[p.checksum for p in pages],
        data=b"".join(p.data for p in pages),
        lengths=[len(p.data) for p in pages],
    )
    for name, value in fields.items():
        request.ClearField(name)
        if name == "keys":
            request.keys.CopyFrom(value)
        elif isinstance(value, bytes | str):
            setattr(request, name, value)
        else:
            getattr(request, name).extend(value)
    return request


@pytest.fixture
def wire(node: NodeProcess) -> Iterator[RawNode]:
    with RawNode(node.address) as raw:
        yield raw


def put_both(wire: RawNode, pages: Sequence[peer_pb2.RemotePage], **fields: Any) -> list[Answer]:
    """`pages` put in the per-page form, then in the lean form, with `fields` in both."""
    per_page = peer_pb2.PeerPutRequest(origin=ORIGIN, pages=pages, **fields)
    return [
        wire.call("/ramster.api.v1.Peer/PutPages", per_page),
        wire.call("/ramster.api.v1.Peer/PutPageBatch", lean_of(pages, **fields)),
    ]


def get_lean(
    wire: RawNode, *indexes: int, skip_checksums: bool = False
) -> peer_pb2.PeerGetBatchResponse:
    """The lean answer for origin pool 1, object 5, at `indexes`."""
    request = peer_pb2.PeerGetBatchRequest(
        origin=ORIGIN,
        keys=tmem_pb2.KeyBatch(oid_word0=[5] * len(indexes), indexes=indexes),
        pool_uids=[1] * len(indexes),
        skip_checksums=skip_checksums,
    )
    answer = wire.call("/ramster.api.v1.Peer/GetPageBatch", request)
    response: peer_pb2.PeerGetBatchResponse = answer.parsed(peer_pb2.PeerGetBatchResponse)
    return response


def get_per_page(wire: RawNode, *indexes: int) -> peer_pb2.PeerGetResponse:
    request = peer_pb2.PeerGetRequest(
        origin=ORIGIN,
        keys=[peer_pb2.RemoteKey(pool=1, oid=tmem_pb2.Oid(word0=5), index=i) for i in indexes],
    )
    answer = wire.call("/ramster.api.v1.Peer/GetPages", request)
    response: peer_pb2.PeerGetResponse = answer.parsed(peer_pb2.PeerGetResponse)
    return response


def test_a_holder_announces_the_lean_calls_in_its_hello(wire: RawNode) -> None:
    hello = peer_pb2.HelloRequest(cluster="ramster", protocol_version=1, node_name="origin")
    answer = wire.call("/ramster.api.v1.Peer/Hello", hello).parsed(peer_pb2.HelloResponse)
    assert (answer.protocol_version, answer.page_batches, answer.flush_batches) == (1, True, True)


def test_each_malformed_page_is_refused_with_the_same_text_in_both_forms(wire: RawNode) -> None:
    now = time.time_ns() // 1000
    damaged = peer_page(1, checksum=0)
    crc = zlib.crc32(damaged.data)
    cases = [
        (
            peer_page(1, encoding=RAW),
            "pages[1].encoding 0 is invalid: expected PAGE_ENCODING_LZ4, "
            "PAGE_ENCODING_SAME_FILLED, PAGE_ENCODING_ZSTD or PAGE_ENCODING_SEALED",
        ),
        (
            peer_page(1, encoding=7),
            "pages[1].encoding 7 is invalid: expected PAGE_ENCODING_LZ4, "
            "PAGE_ENCODING_SAME_FILLED, PAGE_ENCODING_ZSTD or PAGE_ENCODING_SEALED",
        ),
        (
            peer_page(1, data=lz4_of(page(1)[:4095])),
            "pages[1].data length 4095 != pool page_size 4096",
        ),
        (
            peer_page(1, data=b"\x07\x07", encoding=SAME),
            "pages[1].data length 2 is invalid: a same-filled page is 1 byte",
        ),
        (
            peer_page(1, data=b"\x01" * 29, encoding=SEALED),
            "pages[1].data of 29 bytes is no sealed page of 4096 bytes: expected 30 to 4125 bytes",
        ),
        (
            peer_page(1, page_size=4097),
            "pages[1].page_size 4097 is invalid: expected a power of two in 512..65536",
        ),
        (
            peer_page(1, oid=tmem_pb2.Oid(word0=U64_MAX, word1=U64_MAX, word2=U64_MAX)),
            f"pages[1].oid {ALL_ONES} is invalid: expected not the reserved all-ones oid",
        ),
        (peer_page(1, version=0), f"pages[1].version 0 is invalid: expected {VERSION_RULE}"),
        (
            peer_page(1, version=now + 2 * 3600 * 10**6),
            f"pages[1].version {now + 2 * 3600 * 10**6} is invalid: expected {VERSION_RULE}",
        ),
        (
            damaged,
            f"pages[1].checksum 0x00000000 does not match its data ({crc:#010x}): the page was "
            "damaged on the way",
        ),
    ]
    wrong = {}
    for bad, text in cases:
        refusals = [answer.refusal for answer in put_both(wire, [peer_page(0), bad])]
        if refusals != [(INVALID, text)] * 2:
            wrong[text] = refusals
    assert wrong == {}
    # So are a bad pool record and a holder epoch of another process of this node.
    record = peer_pb2.PoolRecord(pool=1, client="", pool_id=0, persistent=True, page_size=4096)
    expected = "pools[0].client '' is invalid: expected a non-empty name of at most 328 characters"
    assert [a.refusal for a in put_both(wire, [peer_page(0)], pools=[record])] == [
        (INVALID, expected)
    ] * 2
    stale = "0123456789abcdef"
    node_epoch = get_epoch(wire)
    expected = (
        f"holder_epoch {stale!r} is not this node's epoch {node_epoch!r}: it restarted since the "
        "origin last saw it"
    )
    assert [a.refusal for a in put_both(wire, [peer_page(0)], holder_epoch=stale)] == [
        (PRECONDITION, expected)
    ] * 2
    assert list(get_lean(wire, 0, 1).lengths) == [0, 0]


def get_epoch(wire: RawNode) -> str:
    hello = peer_pb2.HelloRequest(cluster="ramster", protocol_version=1, node_name="origin")
    epoch: str = wire.call("/ramster.api.v1.Peer/Hello", hello).parsed(peer_pb2.HelloResponse).epoch
    return epoch


def test_lean_puts_whose_arrays_disagree_are_refused_naming_them_and_store_nothing(
    wire: RawNode,
) -> None:
    pages = [peer_page(0), peer_page(1)]
    total = sum(len(p.data) for p in pages)
    expected_one = "entries for 2 keys: expected one per key"
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {"keys": tmem_pb2.KeyBatch(oid_word0=[5, 5, 5], indexes=[0, 1])},
            "keys.oid_word0 has 3 entries for 2 keys.indexes: expected one per key",
        ),
        (
            {"keys": tmem_pb2.KeyBatch(oid_word0=[5, 5], oid_word2=[0], indexes=[0, 1])},
            "keys.oid_word2 has 1 entries for 2 keys.indexes: expected one per key or none",
        ),
        ({"pool_uids": [1]}, f"pool_uids has 1 {expected_one}"),
        ({"persistent": [True] * 3}, f"persistent has 3 {expected_one}"),
        ({"versions": []}, f"versions has 0 {expected_one}"),
        ({"encodings": [LZ4]}, f"encodings has 1 {expected_one}"),
        ({"page_sizes": [4096] * 3}, f"page_sizes has 3 {expected_one}"),
        ({"checksums": [0]}, f"checksums has 1 {expected_one}"),
        ({"lengths": [total]}, f"lengths has 1 {expected_one}"),
        (
            {"lengths": [len(pages[0].data), len(pages[1].data) - 1]},
            f"lengths add up to {total - 1} bytes, data has {total}",
        ),
        (
            {"lengths": [len(pages[0].data) + 1, len(pages[1].data)]},
            f"lengths add up to {total + 1} bytes, data has {total}",
        ),
    ]
    wrong = {}
    for fields, text in cases:
        answer = wire.call("/ramster.api.v1.Peer/PutPageBatch", lean_of(pages, **fields))
        if answer.refusal != (INVALID, text):
            wrong[text] = answer.refusal
    assert wrong == {}
    over = [peer_page(i, data=b"\x07", encoding=SAME) for i in range(1025)]
    answer = wire.call("/ramster.api.v1.Peer/PutPageBatch", lean_of(over))
    assert answer.refusal == (INVALID, "keys count 1025 exceeds the batch limit 1024")
    assert list(get_lean(wire, 0, 1).lengths) == [0, 0]
    # The same batch, whole, is stored.
    stored = wire.call("/ramster.api.v1.Peer/PutPageBatch", lean_of(pages))
    assert list(stored.parsed(peer_pb2.PeerPutBatchResponse).results) == [STORED] * 2


def test_lean_gets_with_bad_keys_are_refused_naming_them(wire: RawNode) -> None:
    reserved = tmem_pb2.KeyBatch(
        oid_word0=[5, U64_MAX], oid_word1=[0, U64_MAX], oid_word2=[0, U64_MAX], indexes=[0, 0]
    )
    cases = [
        (
            tmem_pb2.KeyBatch(oid_word0=[5], indexes=[0, 1]),
            [1, 1],
            "keys.oid_word0 has 1 entries for 2 keys.indexes: expected one per key",
        ),
        (
            tmem_pb2.KeyBatch(oid_word0=[5, 5], indexes=[0, 1]),
            [1],
            "pool_uids has 1 entries for 2 keys: expected one per key",
        ),
        (
            reserved,
            [1, 1],
            f"keys[1].oid {ALL_ONES} is invalid: expected not the reserved all-ones oid",
        ),
        (
            tmem_pb2.KeyBatch(oid_word0=[5] * 1025, indexes=range(1025)),
            [1] * 1025,
            "keys count 1025 exceeds the batch limit 1024",
        ),
    ]
    refusals = [
        wire.call(
            "/ramster.api.v1.Peer/GetPageBatch",
            peer_pb2.PeerGetBatchRequest(origin=ORIGIN, keys=keys, pool_uids=uids),
        ).refusal
        for keys, uids, _ in cases
    ]
    assert refusals == [(INVALID, text) for _, _, text in cases]
    # The per-page form names the reserved key alike.
    per_page = peer_pb2.PeerGetRequest(
        origin=ORIGIN,
        keys=[
            peer_pb2.RemoteKey(pool=1, oid=tmem_pb2.Oid(word0=5)),
            peer_pb2.RemoteKey(
                pool=1, oid=tmem_pb2.Oid(word0=U64_MAX, word1=U64_MAX, word2=U64_MAX)
            ),
        ],
    )
    assert wire.call("/ramster.api.v1.Peer/GetPages", per_page).refusal == refusals[2]


def test_pages_put_in_either_form_come_back_exact_in_either_form(wire: RawNode) -> None:
    """lz4, same-filled and sealed pages (a holder keeps what it cannot open as it came); a miss
    is a length of 0. Both answers say the same of every key."""
    now = time.time_ns() // 1000
    sealed = bytes(range(40))
    lean = [
        peer_page(0, version=now),
        peer_page(1, version=now + 1, data=b"\x07", encoding=SAME),
        peer_page(2, version=now + 2, data=sealed, encoding=SEALED),
    ]
    stored = wire.call("/ramster.api.v1.Peer/PutPageBatch", lean_of(lean))
    assert list(stored.parsed(peer_pb2.PeerPutBatchResponse).results) == [STORED] * 3
    per_page = peer_pb2.PeerPutRequest(origin=ORIGIN, pages=[peer_page(3, version=now + 3)])
    assert wire.call("/ramster.api.v1.Peer/PutPages", per_page).code is grpc.StatusCode.OK
    datas = [lz4_of(page(0)), b"\x07", sealed, lz4_of(page(3))]
    answer = get_lean(wire, 0, 1, 2, 3, 4)
    assert answer.data == b"".join(datas)
    assert list(answer.lengths) == [*map(len, datas), 0]
    # A sealed page comes back as the opaque block it was kept as, in either form.
    assert list(answer.encodings) == [LZ4, SAME, LZ4, LZ4, RAW]
    assert list(answer.versions) == [now, now + 1, now + 2, now + 3, 0]
    assert list(answer.checksums) == [*map(zlib.crc32, datas), 0]
    pages = get_per_page(wire, 0, 1, 2, 3, 4)
    assert list(pages.found) == [True] * 4 + [False]
    assert list(pages.data) == [*datas, b""]
    assert (list(pages.encodings), list(pages.versions), list(pages.checksums)) == (
        list(answer.encodings),
        list(answer.versions),
        list(answer.checksums),
    )


def test_a_put_without_checksums_is_refused_on_a_connection_without_tls(wire: RawNode) -> None:
    """Nothing but a checksum would tell a holder without TLS that a page was damaged on the
    way, sealed or not: a put that skips them is refused whole, and stores nothing."""
    now = time.time_ns() // 1000
    sealed = peer_page(0, version=now, data=bytes(range(40)), encoding=SEALED)
    request = lean_of([sealed], checksums=[])
    request.skip_checksums = True
    answer = wire.call("/ramster.api.v1.Peer/PutPageBatch", request)
    assert answer.refusal == (
        INVALID,
        "skip_checksums is true on a connection that proves no node (no TLS): expected false, "
        "a checksum for each page",
    )
    assert get_lean(wire, 0).lengths == [0]


def test_a_lean_get_that_skips_checksums_answers_every_checksum_0_and_the_pages_alike(
    wire: RawNode,
) -> None:
    """An origin that checks its pages by their seals' tags asks for no CRC-32s: the answer is
    the same but for its checksums."""
    now = time.time_ns() // 1000
    sealed = bytes(range(40))
    lean = [
        peer_page(0, version=now),
        peer_page(2, version=now + 2, data=sealed, encoding=SEALED),
    ]
    stored = wire.call("/ramster.api.v1.Peer/PutPageBatch", lean_of(lean))
    assert list(stored.parsed(peer_pb2.PeerPutBatchResponse).results) == [STORED] * 2
    checked = get_lean(wire, 0, 1, 2)
    skipped = get_lean(wire, 0, 1, 2, skip_checksums=True)
    assert list(checked.checksums) == [zlib.crc32(lz4_of(page(0))), 0, zlib.crc32(sealed)]
    assert list(skipped.checksums) == [0, 0, 0]
    assert skipped.data == checked.data == lz4_of(page(0)) + sealed
    assert list(skipped.lengths) == list(checked.lengths) == [len(lz4_of(page(0))), 0, 40]
    assert list(skipped.encodings) == list(checked.encodings) == [LZ4, RAW, LZ4]
    assert list(skipped.versions) == list(checked.versions) == [now, 0, now + 2]


# -- an origin's link: the lean form to a holder that announced it, the per-page form else ---


def _dictionary() -> PageDictionary:
    samples = [record_page(n) for n in range(200)]
    data = train(Training(7, 5, Samples(samples), 16384, 1))
    assert data is not None
    return PageDictionary(data)


WITH_DICTIONARY = pack_page(record_page(9999), Codec(ZSTD, 1), _dictionary())
"""A page of a persistent zstd pool packed with its dictionary (5): a holder of any release
keeps it as it keeps any page, and never needs the dictionary."""


def shipments(now: int) -> list[Shipment]:
    """Pages 0..3 of origin pool 7, object 9: two distinct lz4 pages, a same-filled one, and
    one packed with a zstd dictionary."""
    packed = [pack_page(page(0)), pack_page(page(1)), pack_page(b"\x00" * 4096), WITH_DICTIONARY]
    return [
        Shipment(
            pool_uid=7,
            oid=(9, 0, 0),
            index=index,
            version=now + index,
            obj_id=1,
            slot=index,
            persistent=True,
            page=page_,
        )
        for index, page_ in enumerate(packed)
    ]


def refs(items: Sequence[Shipment], *missing: int) -> list[RemoteRef]:
    """The refs of `items`, then of indexes `missing` (never put)."""
    keys = [(s.index, s.version) for s in items] + [(index, 1) for index in missing]
    return [
        RemoteRef(
            pool_uid=7,
            oid=(9, 0, 0),
            index=index,
            version=version,
            node=1,
            obj_id=1,
            persistent=True,
            page_size=4096,
        )
        for index, version in keys
    ]


OWNER = PoolRecord(7, "client:app/swap", 0, PoolSpec(persistent=True))


def link_to(relay: PeerRelay, sealed: bool) -> PeerLink:
    seal = OriginSeal("origin", b"k" * KEY_BYTES) if sealed else None
    return PeerLink(1, relay.address, 2, PEER_EPOCH, 10.0, cluster="ramster", name="o", seal=seal)


@pytest.mark.parametrize("old", [False, True], ids=["announced", "earlier-release"])
@pytest.mark.parametrize("sealed", [False, True], ids=["packed", "sealed"])
def test_a_link_uses_the_form_its_holder_announced_and_reads_back_exact_pages(
    node: NodeProcess, old: bool, sealed: bool
) -> None:
    async def run() -> tuple[list[bool], list[tuple[PackedPage, int] | None], PeerRelay, int]:
        async with PeerRelay(node.address, old=old) as relay:
            link = link_to(relay, sealed)
            link.holder_epoch = node.epoch
            try:
                stored = await link.put(items, [OWNER])
                answers = await link.get(refs(items, 4))
                return stored, answers, relay, link.corrupt_pages
            finally:
                await link.close()

    items = shipments(time.time_ns() // 1000)
    stored, answers, relay, corrupt = asyncio.run(run())
    calls = relay.calls
    assert stored == [True] * 4
    assert answers == [(s.page, s.version) for s in items] + [None]
    assert [answer[0].dictionary for answer in answers if answer is not None] == [0, 0, 0, 5]
    assert corrupt == 0
    form = ["PutPages", "GetPages"] if old else ["PutPageBatch", "GetPageBatch"]
    assert calls == ["Hello", *form]
    if not old:  # a sealed link asks for no checksums: it checks the pages by their tags
        get = peer_pb2.PeerGetBatchRequest.FromString(relay.requests[2])
        assert get.skip_checksums is sealed


@pytest.mark.parametrize("old", [False, True], ids=["announced", "earlier-release"])
@pytest.mark.parametrize("sealed", [False, True], ids=["packed", "sealed"])
def test_a_copy_damaged_on_the_way_is_a_lost_copy_in_either_form(
    node: NodeProcess, old: bool, sealed: bool
) -> None:
    """Packed, the CRC-32 finds the damage; sealed, the seal's tag does (the link does not read
    the checksum of a sealed page)."""

    async def run() -> tuple[list[tuple[PackedPage, int] | None], int]:
        async with PeerRelay(node.address, old=old) as relay:
            link = link_to(relay, sealed)
            try:
                assert await link.put(items) == [True] * 4
                relay.damage = True
                return await link.get(refs(items)), link.corrupt_pages
            finally:
                await link.close()

    items = shipments(time.time_ns() // 1000)
    answers, corrupt = asyncio.run(run())
    assert answers == [None] + [(s.page, s.version) for s in items[1:]]
    assert corrupt == 1


@pytest.mark.parametrize("old", [False, True], ids=["announced", "earlier-release"])
@pytest.mark.parametrize("sealed", [False, True], ids=["packed", "sealed"])
def test_a_sealed_page_is_checked_by_its_tag_alone_and_a_packed_one_by_its_checksum(
    node: NodeProcess, old: bool, sealed: bool
) -> None:
    """Every checksum of the answers zeroed, the pages as the holder keeps them: the link opens
    each sealed page whatever its checksum says (a holder can forge a CRC-32, not the tag), and
    takes each packed page for a lost copy."""

    async def run() -> tuple[list[tuple[PackedPage, int] | None], int]:
        async with PeerRelay(node.address, old=old) as relay:
            link = link_to(relay, sealed)
            try:
                assert await link.put(items) == [True] * 4
                relay.zero_checksums = True
                return await link.get(refs(items, 4)), link.corrupt_pages
            finally:
                await link.close()

    items = shipments(time.time_ns() // 1000)
    answers, corrupt = asyncio.run(run())
    if sealed:
        assert answers == [(s.page, s.version) for s in items] + [None]
        assert corrupt == 0
    else:
        assert answers == [None] * 5
        assert corrupt == 4


def test_a_link_asks_a_restarted_holder_again_which_form_it_serves(node: NodeProcess) -> None:
    """A peer of a new epoch is a new process, maybe of another release: the link's next call
    asks its Hello again, and uses what it announces."""

    async def run() -> list[str]:
        async with PeerRelay(node.address) as relay:
            link = link_to(relay, sealed=False)
            try:
                link.holder_epoch = node.epoch
                assert await link.get(refs([], 0)) == [None]
                assert await link.get(refs([], 0)) == [None]
                link.holder_epoch = "0123456789abcdef"  # as the view has it once it restarted
                relay.old = True  # what its Hello says now (the relay still serves both)
                assert await link.get(refs([], 0)) == [None]
                return relay.calls
            finally:
                await link.close()

    assert asyncio.run(run()) == [
        "Hello",
        "GetPageBatch",
        "GetPageBatch",
        "Hello",
        "GetPages",
    ]


def test_concurrent_first_calls_of_a_link_ask_its_holder_one_hello(node: NodeProcess) -> None:
    async def run() -> list[str]:
        async with PeerRelay(node.address) as relay:
            link = link_to(relay, sealed=False)
            try:
                link.holder_epoch = node.epoch
                answers = await asyncio.gather(*(link.get(refs([], 0)) for _ in range(4)))
                assert answers == [[None]] * 4
                return relay.calls
            finally:
                await link.close()

    assert asyncio.run(run()) == ["Hello", *["GetPageBatch"] * 4]


def test_a_link_flushes_pages_in_the_form_its_holder_announced(node: NodeProcess) -> None:
    """Four pages put; flushes of page 0 at its version, page 1 at any version (0), page 2 at
    a version it does not hold, and page 5 never put: the first two go, the others stay or were
    never there, in either form."""

    async def run(old: bool) -> tuple[int, list[tuple[PackedPage, int] | None], list[str]]:
        async with PeerRelay(node.address, old=old) as relay:
            link = link_to(relay, sealed=False)
            link.holder_epoch = node.epoch
            try:
                assert await link.put(items, [OWNER]) == [True] * 4
                found = await link.flush(
                    [
                        RemoteFlush(1, 7, (9, 0, 0), 0, items[0].version),
                        RemoteFlush(1, 7, (9, 0, 0), 1, 0),
                        RemoteFlush(1, 7, (9, 0, 0), 2, items[2].version - 1),
                        RemoteFlush(1, 7, (9, 0, 0), 5, 1),
                    ]
                )
                return found, await link.get(refs(items)), relay.calls
            finally:
                await link.close()

    for old in (False, True):
        items = shipments(time.time_ns() // 1000 + (10**6 if old else 0))
        found, answers, calls = asyncio.run(run(old))
        assert found == 2
        assert answers == [
            None,
            None,
            (items[2].page, items[2].version),
            (items[3].page, items[3].version),
        ]
        form = (
            ["PutPages", "FlushPages", "GetPages"]
            if old
            else ["PutPageBatch", "FlushPageBatch", "GetPageBatch"]
        )
        assert calls == ["Hello", *form]


def test_lean_flushes_with_bad_keys_are_refused_naming_them_as_per_page_ones(wire: RawNode) -> None:
    late = time.time_ns() // 1000 + 2 * 3600 * 10**6
    reserved = tmem_pb2.KeyBatch(
        oid_word0=[5, U64_MAX], oid_word1=[0, U64_MAX], oid_word2=[0, U64_MAX], indexes=[0, 0]
    )
    two = tmem_pb2.KeyBatch(oid_word0=[5, 5], indexes=[0, 1])
    cases = [
        (two, [1], [0, 0], "pool_uids has 1 entries for 2 keys: expected one per key"),
        (two, [1, 1], [0], "versions has 1 entries for 2 keys: expected one per key"),
        (
            reserved,
            [1, 1],
            [0, late],
            f"keys[1].oid {ALL_ONES} is invalid: expected not the reserved all-ones oid",
        ),
        (
            two,
            [1, 1],
            [1, late],
            f"keys[1].version {late} is invalid: expected 0 (any version) or {VERSION_RULE}",
        ),
    ]
    refusals = [
        wire.call(
            "/ramster.api.v1.Peer/FlushPageBatch",
            peer_pb2.PeerFlushPageBatchRequest(
                origin=ORIGIN, keys=keys, pool_uids=uids, versions=versions
            ),
        ).refusal
        for keys, uids, versions, _ in cases
    ]
    assert refusals == [(INVALID, text) for *_, text in cases]
    # The per-page form names the same key alike.
    per_page = peer_pb2.PeerFlushPagesRequest(
        origin=ORIGIN,
        keys=[
            peer_pb2.RemoteKey(pool=1, oid=tmem_pb2.Oid(word0=5), version=1),
            peer_pb2.RemoteKey(pool=1, oid=tmem_pb2.Oid(word0=5), index=1, version=late),
        ],
    )
    assert wire.call("/ramster.api.v1.Peer/FlushPages", per_page).refusal == refusals[3]


def test_an_object_flush_goes_up_to_its_version_and_a_bad_one_is_refused(
    node: NodeProcess, wire: RawNode
) -> None:
    """Four pages of one object put, then its flush up to page 1's version: pages 0 and 1 go,
    the newer pages 2 and 3 stay (an origin that put them again after it flushed the object
    keeps their copies, whichever call the holder serves first)."""

    async def run() -> tuple[int, list[tuple[PackedPage, int] | None]]:
        async with PeerRelay(node.address) as relay:
            link = link_to(relay, sealed=False)
            link.holder_epoch = node.epoch
            try:
                assert await link.put(items, [OWNER]) == [True] * 4
                found = await link.flush([RemoteFlush(1, 7, (9, 0, 0), None, items[1].version)])
                return found, await link.get(refs(items))
            finally:
                await link.close()

    items = shipments(time.time_ns() // 1000 + 2 * 10**6)
    found, answers = asyncio.run(run())
    assert found == 1
    assert answers == [None, None, *((s.page, s.version) for s in items[2:])]
    late = time.time_ns() // 1000 + 2 * 3600 * 10**6
    request = peer_pb2.PeerFlushObjectsRequest(
        origin=ORIGIN,
        objects=[peer_pb2.RemoteObject(pool=7, oid=tmem_pb2.Oid(word0=9), version=late)],
    )
    assert wire.call("/ramster.api.v1.Peer/FlushObjects", request).refusal == (
        INVALID,
        f"objects[0].version {late} is invalid: expected 0 (any version) or {VERSION_RULE}",
    )
