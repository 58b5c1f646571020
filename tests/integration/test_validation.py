"""Every refusal of a real node, as raw gRPC shows it: the status code and the exact message.

Calls go through a plain channel (`tests.support.wire.RawNode`), not the client library, so the
status is the node's own, and requests can carry what no library would send. docs/design.md §8: bad
input is INVALID_ARGUMENT naming the field and the value, an unknown pool NOT_FOUND, a limit
RESOURCE_EXHAUSTED, a state that does not allow the call FAILED_PRECONDITION; never UNKNOWN.
"""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import grpc
import lz4.block
import pytest

from ramster.api.v1 import admin_pb2, peer_pb2, tmem_pb2
from tests.support.nodes import NodeFactory, NodeProcess
from tests.support.wire import METHODS, Answer, RawNode

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION

U64_MAX = 2**64 - 1
U32_MAX = 2**32 - 1
ALL_ONES = f"({U64_MAX}, {U64_MAX}, {U64_MAX})"
SHARED = uuid.UUID("5a1e0000-0000-4000-8000-000000000001")
ZCACHE_OFF = "the zcache backend is off on this node: turn it on with `ramster param set zcache on`"
PEER_EPOCH = "00062a0b1c2d3e4f"
"""An epoch as a node makes it: its start in microseconds (13 hex digits) and 3 random ones."""
EPOCH_RULE = "16 lowercase hex digits (a node's start time in microseconds and 3 random ones)"
VERSION_RULE = "1 up to this node's clock plus one hour, in microseconds since 1970"
HOUR_US = 3600 * 10**6
TMEM_CALLS = (
    "NewPool",
    "DestroyPool",
    "PutPages",
    "GetPages",
    "PutPageBatch",
    "GetPageBatch",
    "FlushPages",
    "FlushObjects",
)
POOL_CALLS = TMEM_CALLS[1:]


def page(n: int, size: int = 4096) -> bytes:
    """A distinct, compressible page."""
    return (f"page {n:6d} ".encode() * (size // 12 + 1))[:size]


def oid(*words: int) -> tmem_pb2.Oid:
    return tmem_pb2.Oid(**{f"word{i}": word for i, word in enumerate(words)})


def raw_page(n: int, data: bytes, index: int = 0, **fields: Any) -> tmem_pb2.Page:
    return tmem_pb2.Page(oid=oid(n), index=index, data=data, **fields)


def raw_batch(*pages: bytes) -> dict[str, Any]:
    """The fields of a lean put of raw `pages` at oid 1, indexes 0, 1, ..."""
    return {
        "keys": tmem_pb2.KeyBatch(oid_word0=[1] * len(pages), indexes=range(len(pages))),
        "data": b"".join(pages),
        "lengths": [len(p) for p in pages],
        "encodings": [tmem_pb2.PAGE_ENCODING_UNSPECIFIED] * len(pages),
    }


def lz4_of(data: bytes) -> bytes:
    block: bytes = lz4.block.compress(data, store_size=False)
    return block


def pool_request(name: str, pool_id: int, client: str = "app") -> dict[str, Any]:
    """Fields of a well-formed `name` request on `pool_id`, one page or key or oid."""
    fields: dict[str, Any] = {"client": client}
    if name not in ("NewPool", "KeepAlive"):
        fields["pool_id"] = pool_id
    if name == "PutPages":
        fields["pages"] = [raw_page(1, page(1))]
    elif name in ("GetPages", "FlushPages"):
        fields["keys"] = [tmem_pb2.PageKey(oid=oid(1))]
    elif name == "PutPageBatch":
        fields.update(raw_batch(page(1)))
    elif name == "GetPageBatch":
        fields["keys"] = tmem_pb2.KeyBatch(oid_word0=[1], indexes=[0])
    elif name == "FlushObjects":
        fields["oids"] = [oid(1)]
    return fields


@pytest.fixture
def wire(node: NodeProcess) -> Iterator[RawNode]:
    with RawNode(node.address) as raw:
        yield raw


def new_pool(wire: RawNode, client: str = "app", **spec: Any) -> int:
    pool_id: int = (
        wire.tmem("NewPool", client=client, **spec).parsed(tmem_pb2.NewPoolResponse).pool_id
    )
    return pool_id


def get(wire: RawNode, pool: int, *keys: tuple[int, int], client: str = "app") -> list[Any]:
    """The pages at `keys` (oid word0, index), None for a miss, kept in the pool."""
    answer = wire.tmem(
        "GetPages",
        client=client,
        pool_id=pool,
        keys=[tmem_pb2.PageKey(oid=oid(word0), index=index) for word0, index in keys],
        mode=tmem_pb2.GET_MODE_KEEP,
    )
    response = answer.parsed(tmem_pb2.GetPagesResponse)
    return [
        data if found else None for found, data in zip(response.found, response.data, strict=True)
    ]


def params(wire: RawNode) -> dict[str, str]:
    return dict(wire.admin("GetParams").parsed(admin_pb2.GetParamsResponse).params)


def switches(wire: RawNode) -> dict[str, str]:
    """The node's zcache and ramster params."""
    every = params(wire)
    return {name: every[name] for name in ("zcache", "ramster")}


def test_a_page_of_the_wrong_length_is_refused_naming_the_page_and_both_lengths(
    wire: RawNode,
) -> None:
    pool = new_pool(wire, persistent=True)
    small = new_pool(wire, page_size=512)
    cases = [
        (pool, [raw_page(1, page(1)[:4095])], "pages[0].data length 4095 != pool page_size 4096"),
        (pool, [raw_page(1, b"")], "pages[0].data length 0 != pool page_size 4096"),
        (
            pool,
            [raw_page(1, page(1)), raw_page(1, page(2) + b"x", index=1)],
            "pages[1].data length 4097 != pool page_size 4096",
        ),
        (small, [raw_page(1, page(1))], "pages[0].data length 4096 != pool page_size 512"),
    ]
    for pool_id, pages, message in cases:
        answer = wire.tmem("PutPages", client="app", pool_id=pool_id, pages=pages)
        assert answer.refusal == (INVALID, message)
    # A batch is validated whole before any page of it is stored.
    assert get(wire, pool, (1, 0), (1, 1)) == [None, None]


WRONG_LENGTHS = (2, 4095, 4097, 8192, 65536, 1_000_000)
"""Lengths of uniform pages (every byte equal) that are no 4 KiB page."""


def unstated_lz4(length: int, block: int) -> str:
    """The refusal of an lz4 block of a `length`-byte page that states no length: a block
    decoding beyond the largest page size is no block of a page at all."""
    if length > 65536:
        return f"pages[0].data is not an lz4 block of a page ({block} bytes received)"
    return f"pages[0].data length {length} != pool page_size 4096"


def test_a_uniform_page_of_the_wrong_length_is_refused_in_every_encoding(wire: RawNode) -> None:
    """A same-filled page is one fill byte: only its stated `length` tells how long the page
    was, and the node holds it to the pool's page_size like every other encoding."""
    pool = new_pool(wire, persistent=True)
    lz4, same = tmem_pb2.PAGE_ENCODING_LZ4, tmem_pb2.PAGE_ENCODING_SAME_FILLED
    refused = {}
    for length in WRONG_LENGTHS:
        uniform = b"\x07" * length
        stated = f"pages[0].length {length} != pool page_size 4096"
        for encoding, data, stated_length, message in (
            (0, uniform, 0, f"pages[0].data length {length} != pool page_size 4096"),
            (0, uniform, length, stated),
            (same, b"\x07", length, stated),
            (lz4, lz4_of(uniform), length, stated),
            (lz4, lz4_of(uniform), 0, unstated_lz4(length, len(lz4_of(uniform)))),
        ):
            page_message = raw_page(1, data, encoding=encoding, length=stated_length)
            answer = wire.tmem("PutPages", client="app", pool_id=pool, pages=[page_message])
            refused[length, encoding, stated_length] = (
                answer.refusal == (INVALID, message) or answer.refusal
            )
    assert refused == dict.fromkeys(refused, True)
    unstated = [raw_page(1, b"\x07", encoding=same)]
    assert wire.tmem("PutPages", client="app", pool_id=pool, pages=unstated).refusal == (
        INVALID,
        "pages[0].length is 0: a same-filled page states its length, the pool page_size 4096",
    )
    assert get(wire, pool, (1, 0)) == [None]
    # Stated right, both packings store the page; lz4 may leave the length unstated (its block
    # decodes to it).
    good = [
        raw_page(1, b"\x07", encoding=same, length=4096),
        raw_page(2, lz4_of(b"\x07" * 4096), encoding=lz4, length=4096),
        raw_page(3, lz4_of(b"\x07" * 4096), encoding=lz4),
    ]
    stored = wire.tmem("PutPages", client="app", pool_id=pool, pages=good)
    assert stored.parsed(tmem_pb2.PutPagesResponse).results == [tmem_pb2.PUT_STATUS_STORED] * 3
    assert get(wire, pool, (1, 0), (2, 0), (3, 0)) == [b"\x07" * 4096] * 3


def test_a_page_size_that_is_no_power_of_two_in_range_is_refused(wire: RawNode) -> None:
    for page_size in (1, 256, 511, 513, 1000, 3072, 131072, U32_MAX):
        answer = wire.tmem("NewPool", client="app", page_size=page_size)
        assert answer.refusal == (
            INVALID,
            f"page_size {page_size} is invalid: expected a power of two in 512..65536",
        )


def test_page_sizes_at_the_limits_and_zero_for_the_default_are_accepted(wire: RawNode) -> None:
    for page_size, expected in ((0, 4096), (512, 512), (65536, 65536)):
        pool = new_pool(wire, page_size=page_size)
        answer = wire.tmem("PutPages", client="app", pool_id=pool, pages=[raw_page(3, page(3))])
        if expected == 4096:
            assert answer.parsed(tmem_pb2.PutPagesResponse).results == [tmem_pb2.PUT_STATUS_STORED]
        else:
            assert answer.refusal == (
                INVALID,
                f"pages[0].data length 4096 != pool page_size {expected}",
            )
        keys = [tmem_pb2.PageKey(oid=oid(3))]
        response = wire.tmem("GetPages", client="app", pool_id=pool, keys=keys, packed=True).parsed(
            tmem_pb2.GetPagesResponse
        )
        assert response.page_size == expected


def test_unknown_destroyed_and_negative_pools_are_refused_by_every_call(wire: RawNode) -> None:
    for name in POOL_CALLS:
        answer = wire.tmem(name, **pool_request(name, 7))
        assert answer.refusal == (
            NOT_FOUND,
            "pool_id 7 does not exist for client 'local:local/app'",
        ), name
    pool = new_pool(wire, persistent=True)
    wire.tmem("PutPages", **pool_request("PutPages", pool))
    # Pool ids are per client: another client has no pool 0.
    for name in POOL_CALLS:
        answer = wire.tmem(name, **pool_request(name, pool, client="other"))
        assert answer.refusal == (
            NOT_FOUND,
            "pool_id 0 does not exist for client 'local:local/other'",
        ), name
    destroyed = wire.tmem("DestroyPool", client="app", pool_id=pool)
    assert destroyed.parsed(tmem_pb2.DestroyPoolResponse).pages_flushed == 1
    for name in POOL_CALLS:
        answer = wire.tmem(name, **pool_request(name, pool))
        assert answer.refusal == (
            NOT_FOUND,
            "pool_id 0 does not exist for client 'local:local/app'",
        ), name
    for pool_id in (-1, -(2**31)):
        for name in POOL_CALLS:
            answer = wire.tmem(name, **pool_request(name, pool_id))
            expected = (INVALID, f"pool_id {pool_id} is invalid: expected an int >= 0")
            assert answer.refusal == expected, name


def test_the_reserved_all_ones_oid_is_refused_as_a_key_by_every_call(wire: RawNode) -> None:
    pool = new_pool(wire, persistent=True)
    reserved = oid(U64_MAX, U64_MAX, U64_MAX)
    good_key, bad_key = tmem_pb2.PageKey(oid=oid(1)), tmem_pb2.PageKey(oid=reserved)
    cases = [
        (
            "PutPages",
            {"pages": [raw_page(1, page(1)), tmem_pb2.Page(oid=reserved, data=page(2))]},
            "pages[1].oid",
        ),
        ("GetPages", {"keys": [good_key, bad_key]}, "keys[1].oid"),
        ("FlushPages", {"keys": [good_key, bad_key]}, "keys[1].oid"),
        ("FlushObjects", {"oids": [oid(1), reserved]}, "oids[1]"),
    ]
    for name, fields, field in cases:
        answer = wire.tmem(name, client="app", pool_id=pool, **fields)
        assert answer.refusal == (
            INVALID,
            f"{field} {ALL_ONES} is invalid: expected not the reserved all-ones oid",
        )
    # One bit short of all ones is an ordinary key, at the largest page index.
    key = {"oid": oid(U64_MAX, U64_MAX, U64_MAX - 1), "index": U32_MAX}
    stored = wire.tmem(
        "PutPages", client="app", pool_id=pool, pages=[tmem_pb2.Page(**key, data=page(9))]
    )
    assert stored.parsed(tmem_pb2.PutPagesResponse).results == [tmem_pb2.PUT_STATUS_STORED]
    response = wire.tmem(
        "GetPages", client="app", pool_id=pool, keys=[tmem_pb2.PageKey(**key)]
    ).parsed(tmem_pb2.GetPagesResponse)
    assert (list(response.found), list(response.data)) == ([True], [page(9)])


def test_a_batch_over_1024_entries_is_refused_by_every_call(wire: RawNode) -> None:
    pool = new_pool(wire)
    same = tmem_pb2.PAGE_ENCODING_SAME_FILLED
    pages = [raw_page(1, b"\x07", index=i, encoding=same, length=4096) for i in range(1025)]
    keys = [tmem_pb2.PageKey(oid=oid(1), index=i) for i in range(1025)]
    oids = [oid(i) for i in range(1025)]
    cases = [
        ("PutPages", {"pages": pages}, "pages count 1025 exceeds the batch limit 1024"),
        ("GetPages", {"keys": keys}, "keys count 1025 exceeds the batch limit 1024"),
        ("FlushPages", {"keys": keys}, "keys count 1025 exceeds the batch limit 1024"),
        ("FlushObjects", {"oids": oids}, "oids count 1025 exceeds the batch limit 1024"),
    ]
    for name, fields, message in cases:
        assert wire.tmem(name, client="app", pool_id=pool, **fields).refusal == (INVALID, message)
    full = wire.tmem("PutPages", client="app", pool_id=pool, pages=pages[:1024])
    assert full.parsed(tmem_pb2.PutPagesResponse).results == [tmem_pb2.PUT_STATUS_STORED] * 1024


def test_a_peer_batch_over_1024_entries_is_refused_by_every_peer_call(wire: RawNode) -> None:
    """Node to node the same limit holds: an unbounded batch would stall the node's loop."""
    origin = peer_pb2.Origin(node_number=2, epoch=PEER_EPOCH)
    pages = [peer_pb2.RemotePage(pool=1, index=i, page_size=4096) for i in range(1025)]
    keys = [peer_pb2.RemoteKey(pool=1, index=i) for i in range(1025)]
    objects = [peer_pb2.RemoteObject(pool=1, oid=oid(i)) for i in range(1025)]
    cases = [
        ("PutPages", peer_pb2.PeerPutRequest(origin=origin, pages=pages), "pages"),
        ("GetPages", peer_pb2.PeerGetRequest(origin=origin, keys=keys), "keys"),
        ("FlushPages", peer_pb2.PeerFlushPagesRequest(origin=origin, keys=keys), "keys"),
        (
            "FlushPageBatch",
            peer_pb2.PeerFlushPageBatchRequest(
                origin=origin,
                keys=tmem_pb2.KeyBatch(oid_word0=[1] * 1025, indexes=range(1025)),
                pool_uids=[1] * 1025,
                versions=[0] * 1025,
            ),
            "keys",
        ),
        (
            "FlushObjects",
            peer_pb2.PeerFlushObjectsRequest(origin=origin, objects=objects),
            "objects",
        ),
        (
            "DestroyPools",
            peer_pb2.PeerDestroyPoolsRequest(origin=origin, pools=range(1025)),
            "pools",
        ),
    ]
    wrong = {}
    for name, request, field in cases:
        answer = wire.call(f"/ramster.api.v1.Peer/{name}", request)
        expected = (INVALID, f"{field} count 1025 exceeds the batch limit 1024")
        if answer.refusal != expected:
            wrong[name] = answer.refusal
    assert wrong == {}


def test_a_17th_pool_of_one_client_is_refused_and_a_freed_id_is_reused(wire: RawNode) -> None:
    assert [new_pool(wire) for _ in range(16)] == list(range(16))
    assert wire.tmem("NewPool", client="app").refusal == (
        EXHAUSTED,
        "client 'local:local/app' holds 16 pools: max_pools_per_client is 16",
    )
    assert new_pool(wire, client="other") == 0  # the limit is per client
    wire.tmem("DestroyPool", client="app", pool_id=5).parsed(tmem_pb2.DestroyPoolResponse)
    assert new_pool(wire) == 5


def test_a_long_client_name_shows_cut_in_every_refusal_that_names_it(wire: RawNode) -> None:
    """A client's name (up to 256 characters) is the caller's string: a refusal shows the first
    64 characters of the name the node keeps it under (its label inside the caller's identity,
    here the local one) and that name's length."""
    client = "c" * 256
    cut = f"'local:local/{'c' * 52}'... (268 characters)"
    assert wire.tmem("DestroyPool", client=client, pool_id=3).refusal == (
        NOT_FOUND,
        f"pool_id 3 does not exist for client {cut}",
    )
    assert [new_pool(wire, client=client) for _ in range(16)] == list(range(16))
    assert wire.tmem("NewPool", client=client).refusal == (
        EXHAUSTED,
        f"client {cut} holds 16 pools: max_pools_per_client is 16",
    )


def test_a_shared_uuid_of_a_wrong_length_is_refused(wire: RawNode) -> None:
    for length in (1, 15, 17, 32):
        answer = wire.tmem("NewPool", client="app", shared_uuid=bytes(range(length)))
        assert answer.refusal == (
            INVALID,
            f"shared_uuid length {length} is invalid: expected 0 or 16 bytes",
        )


def test_unknown_page_encodings_and_get_modes_are_refused_naming_the_value(
    wire: RawNode,
) -> None:
    pool = new_pool(wire)
    for encoding in (3, -1, 2**31 - 1):
        pages = [raw_page(1, page(1)), raw_page(2, page(2), encoding=encoding)]
        answer = wire.tmem("PutPages", client="app", pool_id=pool, pages=pages)
        assert answer.refusal == (
            INVALID,
            f"pages[1].encoding {encoding} is invalid: expected PAGE_ENCODING_UNSPECIFIED, "
            "PAGE_ENCODING_LZ4, PAGE_ENCODING_SAME_FILLED or PAGE_ENCODING_ZSTD",
        )
    for mode in (3, -1, 2**31 - 1):
        keys = [tmem_pb2.PageKey(oid=oid(1))]
        answer = wire.tmem("GetPages", client="app", pool_id=pool, keys=keys, mode=mode)
        assert answer.refusal == (
            INVALID,
            f"mode {mode} is invalid: expected GET_MODE_UNSPECIFIED, GET_MODE_FREE or "
            "GET_MODE_KEEP",
        )


def test_packed_pages_that_do_not_decode_to_one_page_are_refused(wire: RawNode) -> None:
    pool = new_pool(wire, persistent=True)
    lz4, same = tmem_pb2.PAGE_ENCODING_LZ4, tmem_pb2.PAGE_ENCODING_SAME_FILLED
    cut = lz4_of(page(1))[:-3]
    cases = [
        (lz4, b"\xff" * 10, "pages[0].data is not an lz4 block of a page (10 bytes received)"),
        (lz4, b"", "pages[0].data is not an lz4 block of a page (0 bytes received)"),
        (lz4, lz4_of(page(1)[:100]), "pages[0].data length 100 != pool page_size 4096"),
        (lz4, lz4_of(page(1) * 2), "pages[0].data length 8192 != pool page_size 4096"),
        (lz4, cut, f"pages[0].data is not an lz4 block of a page ({len(cut)} bytes received)"),
        (same, b"ab", "pages[0].data length 2 is invalid: a same-filled page is 1 byte"),
        (same, b"", "pages[0].data length 0 is invalid: a same-filled page is 1 byte"),
    ]
    for encoding, data, message in cases:
        packed = raw_page(1, data, encoding=encoding, length=4096)
        answer = wire.tmem("PutPages", client="app", pool_id=pool, pages=[packed])
        assert answer.refusal == (INVALID, message), message
    assert get(wire, pool, (1, 0)) == [None]
    # Well-packed pages are stored as they came and read back whole.
    good = [
        raw_page(1, lz4_of(page(1)), encoding=lz4),
        raw_page(2, b"\x5a", encoding=same, length=4096),
    ]
    stored = wire.tmem("PutPages", client="app", pool_id=pool, pages=good)
    assert stored.parsed(tmem_pb2.PutPagesResponse).results == [tmem_pb2.PUT_STATUS_STORED] * 2
    assert get(wire, pool, (1, 0), (2, 0)) == [page(1), b"\x5a" * 4096]


def test_a_missing_or_overlong_client_name_is_refused_by_every_tmem_call(
    wire: RawNode,
) -> None:
    for client, shown in (("", "''"), ("c" * 257, shown_long("c" * 257))):
        for name in (*TMEM_CALLS, "KeepAlive"):
            answer = wire.tmem(name, **pool_request(name, 0, client=client))
            assert answer.refusal == (
                INVALID,
                f"client {shown} is invalid: expected a non-empty name of at most 256 characters",
            ), name
    assert new_pool(wire, client="c" * 256) == 0


def test_a_huge_client_name_is_refused_with_a_message_that_fits_a_grpc_status(
    wire: RawNode,
) -> None:
    """gRPC drops a status whose message exceeds its 16 KiB metadata limit and reports
    RESOURCE_EXHAUSTED instead, so the node must not echo a 64 KiB value in full."""
    answer = wire.tmem("NewPool", client="c" * 65536)
    assert answer.code == INVALID, answer
    assert answer.details.startswith("client 'ccc"), answer.details[:200]
    assert answer.details.endswith(
        "is invalid: expected a non-empty name of at most 256 characters"
    )
    assert len(answer.details) <= 1024
    for fields in ({"name": "n" * 65536, "value": "on"}, {"name": "zcache", "value": "v" * 65536}):
        answer = wire.admin("SetParam", **fields)
        assert answer.code == INVALID, answer
        assert len(answer.details) <= 1024


def test_unknown_params_and_bad_values_are_refused_and_change_nothing(wire: RawNode) -> None:
    before = params(wire)
    known = ", ".join(sorted(before))
    cases = [
        ("bogus", "on", f"param 'bogus' is unknown: expected one of {known}"),
        ("", "on", f"param '' is unknown: expected one of {known}"),
        ("ZCACHE", "on", f"param 'ZCACHE' is unknown: expected one of {known}"),
        ("zcache", "maybe", "param zcache value 'maybe' is invalid: expected on or off"),
        ("ramster", "", "param ramster value '' is invalid: expected on or off"),
        ("ramster", "2", "param ramster value '2' is invalid: expected on or off"),
    ]
    for name, value, message in cases:
        answer = wire.admin("SetParam", name=name, value=value)
        assert answer.refusal == (INVALID, message)
    assert params(wire) == before
    assert (before["zcache"], before["ramster"]) == ("on", "on")
    answer = wire.admin("SetParam", name="ramster", value=" OFF ")
    assert dict(answer.parsed(admin_pb2.SetParamResponse).params) == {**before, "ramster": "off"}


def test_with_zcache_off_every_tmem_call_fails_its_precondition(
    node_factory: NodeFactory,
) -> None:
    started_on = node_factory.start("on")
    started_off = node_factory.start("off", zcache=False)
    with RawNode(started_on.address) as on, RawNode(started_off.address) as off:
        pool = new_pool(on, persistent=False)
        on.tmem("PutPages", **pool_request("PutPages", pool))
        before = params(on)
        switched = on.admin("SetParam", name="zcache", value="off")
        assert dict(switched.parsed(admin_pb2.SetParamResponse).params) == {
            **before,
            "zcache": "off",
        }
        for wire in (on, off):
            for name in TMEM_CALLS:
                # Before any other check: even a request without a client name.
                for client in ("app", ""):
                    answer = wire.tmem(name, **pool_request(name, 0, client=client))
                    assert answer.refusal == (PRECONDITION, ZCACHE_OFF), name
            stats = wire.admin("GetStats").parsed(admin_pb2.GetStatsResponse)
            assert (stats.state.zcache, stats.state.backend_generation) == (
                False,
                1 if wire is on else 0,
            )
        # Loaded again, the backend is new and empty: the old pool is gone.
        on.admin("SetParam", name="zcache", value="on").parsed(admin_pb2.SetParamResponse)
        state = on.admin("GetStats").parsed(admin_pb2.GetStatsResponse).state
        assert (state.zcache, state.backend_generation) == (True, 2)
        answer = on.tmem("GetPages", **pool_request("GetPages", 0))
        assert answer.refusal == (
            NOT_FOUND,
            "pool_id 0 does not exist for client 'local:local/app'",
        )


def test_zcache_stays_on_while_persistent_pages_are_stored(wire: RawNode) -> None:
    eph = new_pool(wire)
    pers = new_pool(wire, persistent=True)
    pages = [raw_page(1, page(i), index=i) for i in range(3)]
    wire.tmem("PutPages", client="app", pool_id=eph, pages=pages)
    wire.tmem("PutPages", client="app", pool_id=pers, pages=pages)
    answer = wire.admin("SetParam", name="zcache", value="off")
    assert answer.refusal == (
        PRECONDITION,
        "zcache holds 3 persistent pages: they must be returned until flushed, so the backend "
        "stays on (flush or destroy their pools first)",
    )
    assert switches(wire) == {"zcache": "on", "ramster": "on"}
    assert get(wire, pers, (1, 0), (1, 1), (1, 2)) == [page(0), page(1), page(2)]
    flushed = wire.tmem("FlushObjects", client="app", pool_id=pers, oids=[oid(1)])
    assert list(flushed.parsed(tmem_pb2.FlushObjectsResponse).flushed) == [True]
    # Ephemeral pages may be dropped: they do not hold the backend on.
    answer = wire.admin("SetParam", name="zcache", value="off")
    assert dict(answer.parsed(admin_pb2.SetParamResponse).params)["zcache"] == "off"


def test_joining_a_shared_pool_with_another_spec_fails_its_precondition(wire: RawNode) -> None:
    assert new_pool(wire, client="a", shared_uuid=SHARED.bytes) == 0
    cases = [
        ({"page_size": 512}, f"ephemeral shared {SHARED} page_size=512"),
        ({"persistent": True}, f"persistent shared {SHARED} page_size=4096"),
    ]
    for spec, described in cases:
        answer = wire.tmem("NewPool", client="b", shared_uuid=SHARED.bytes, **spec)
        assert answer.refusal == (
            PRECONDITION,
            f"shared pool {SHARED} is ephemeral shared {SHARED} page_size=4096, not {described}",
        )
    # A refused join leaves no trace: b's first pool is still 0, and it is the shared one.
    wire.tmem("PutPages", **pool_request("PutPages", 0, client="a"))
    assert new_pool(wire, client="b", shared_uuid=SHARED.bytes) == 0
    assert get(wire, 0, (1, 0), client="b") == [page(1)]


def test_a_body_that_is_no_protobuf_message_is_invalid_not_unknown(wire: RawNode) -> None:
    wrong: dict[tuple[str, bytes], tuple[grpc.StatusCode, str]] = {}
    for method in METHODS:
        if wire.send(method, b"").code is grpc.StatusCode.UNIMPLEMENTED:
            continue  # declared in the proto, not served yet
        for body in (b"\xff\xff\xff", b"\x0a\x05ab"):  # a bad tag; a field cut short
            answer: Answer = wire.send(method, body)
            name = method.input_type.full_name
            expected = (INVALID, f"request ({len(body)} bytes) is not a valid {name} message")
            if answer.refusal != expected:
                wrong[method.path, body] = answer.refusal
    assert wrong == {}


def test_a_client_name_that_is_no_utf8_is_invalid_not_unknown(wire: RawNode) -> None:
    answer = wire.call("/ramster.api.v1.Tmem/NewPool", b"\x0a\x02\xff\xfe")
    assert answer.refusal == (
        INVALID,
        "request (4 bytes) is not a valid ramster.api.v1.NewPoolRequest message",
    )


def test_a_message_over_the_4_mib_limit_is_refused_by_grpc_as_resource_exhausted(
    wire: RawNode,
) -> None:
    pool = new_pool(wire)
    pages = [raw_page(1, page(i), index=i) for i in range(1100)]
    answer = wire.tmem("PutPages", client="app", pool_id=pool, pages=pages)
    assert answer.code == EXHAUSTED
    assert answer.details.startswith("SERVER: Received message larger than max ("), answer.details
    assert answer.details.endswith(" vs. 4259840)")


def test_a_peer_put_for_an_earlier_epoch_of_the_holder_is_refused(
    wire: RawNode, node: NodeProcess
) -> None:
    """A copy meant for the process a node was before it restarted must not land unseen in the
    new one: the origin names the holder's epoch it knows."""
    origin = peer_pb2.Origin(node_number=2, epoch=PEER_EPOCH)
    request = peer_pb2.PeerPutRequest(origin=origin, holder_epoch="0123456789abcdef")
    assert wire.call("/ramster.api.v1.Peer/PutPages", request).refusal == (
        PRECONDITION,
        f"holder_epoch '0123456789abcdef' is not this node's epoch {node.epoch!r}: it restarted "
        "since the origin last saw it",
    )
    request.holder_epoch = node.epoch  # the right one: an empty batch is simply stored
    assert wire.call("/ramster.api.v1.Peer/PutPages", request).code == grpc.StatusCode.OK


# -- peer requests: as strictly checked as an application's -----------------------------------


def peer_page(index: int = 0, version: int = 1, **fields: Any) -> peer_pb2.RemotePage:
    """A well-formed persistent peer page (an lz4 block with its checksum), `fields` changed."""
    message = peer_pb2.RemotePage(
        pool=1,
        persistent=True,
        oid=oid(5),
        index=index,
        version=version,
        data=lz4_of(page(index)),
        encoding=tmem_pb2.PAGE_ENCODING_LZ4,
        page_size=4096,
    )
    for name, value in fields.items():
        if name == "oid":
            message.oid.CopyFrom(value)
        else:
            setattr(message, name, value)
    message.checksum = zlib.crc32(message.data)
    return message


def peer_put(
    wire: RawNode, *pages: peer_pb2.RemotePage, epoch: str = PEER_EPOCH, **fields: Any
) -> Answer:
    origin = peer_pb2.Origin(node_number=2, epoch=epoch)
    request = peer_pb2.PeerPutRequest(origin=origin, pages=pages, **fields)
    return wire.call("/ramster.api.v1.Peer/PutPages", request)


def peer_held(wire: RawNode, *indexes: int) -> list[tuple[bytes, int] | None]:
    """(data, version) of origin 2's pages of pool 1, object 5, at `indexes`; None if absent."""
    keys = [peer_pb2.RemoteKey(pool=1, oid=oid(5), index=i) for i in indexes]
    request = peer_pb2.PeerGetRequest(origin=peer_pb2.Origin(node_number=2, epoch=PEER_EPOCH))
    request.keys.extend(keys)
    answer = wire.call("/ramster.api.v1.Peer/GetPages", request)
    response = answer.parsed(peer_pb2.PeerGetResponse)
    return [
        (data, version) if found else None
        for found, data, version in zip(
            response.found, response.data, response.versions, strict=True
        )
    ]


def shown_long(text: str) -> str:
    """How a refusal shows a long value: its first 64 characters and its length."""
    return f"{text[:64]!r}... ({len(text)} characters)"


def test_a_malformed_peer_page_is_refused_as_an_applications_is(wire: RawNode) -> None:
    """Holders keep pages packed: raw and unknown encodings are refused, not taken for lz4;
    lengths and keys are held to the rules of a client's put."""
    refused = {}
    for encoding in (tmem_pb2.PAGE_ENCODING_UNSPECIFIED, 7, -1, 2**31 - 1):
        answer = peer_put(wire, peer_page(1), peer_page(2, encoding=encoding))
        refused[encoding] = answer.refusal
    expected = (
        "pages[1].encoding {} is invalid: expected PAGE_ENCODING_LZ4, PAGE_ENCODING_SAME_FILLED, "
        "PAGE_ENCODING_ZSTD or PAGE_ENCODING_SEALED"
    )
    assert refused == {e: (INVALID, expected.format(e)) for e in refused}
    same = tmem_pb2.PAGE_ENCODING_SAME_FILLED
    reserved = oid(U64_MAX, U64_MAX, U64_MAX)
    cases = [
        (
            peer_page(data=lz4_of(page(0)[:4095])),
            "pages[0].data length 4095 != pool page_size 4096",
        ),
        (
            peer_page(data=b"\x07\x07", encoding=same),
            "pages[0].data length 2 is invalid: a same-filled page is 1 byte",
        ),
        (  # a holder cannot open a sealed page: its length is all it checks
            peer_page(data=b"\x01" * 29, encoding=tmem_pb2.PAGE_ENCODING_SEALED),
            "pages[0].data of 29 bytes is no sealed page of 4096 bytes: expected 30 to 4125 bytes",
        ),
        (
            peer_page(data=b"\x01" * 4126, encoding=tmem_pb2.PAGE_ENCODING_SEALED),
            "pages[0].data of 4126 bytes is no sealed page of 4096 bytes: expected 30 to 4125 "
            "bytes",
        ),
        (
            peer_page(page_size=4097),
            "pages[0].page_size 4097 is invalid: expected a power of two in 512..65536",
        ),
        (
            peer_page(oid=reserved),
            f"pages[0].oid {ALL_ONES} is invalid: expected not the reserved all-ones oid",
        ),
    ]
    assert [peer_put(wire, message).refusal for message, _ in cases] == [
        (INVALID, text) for _, text in cases
    ]
    assert peer_held(wire, 0, 1, 2) == [None, None, None]


def test_a_peer_request_naming_this_node_as_its_origin_is_refused(
    wire: RawNode, node: NodeProcess
) -> None:
    number = node.ready["number"]
    assert number == 1
    refused = {}
    for method in METHODS:
        if not method.path.startswith("/ramster.api.v1.Peer/") or method.path.endswith("/Hello"):
            continue
        for origin_number in (number, 0):
            origin = peer_pb2.Origin(node_number=origin_number, epoch=PEER_EPOCH)
            refused[method.path, origin_number] = wire.send(
                method, method.request(origin=origin)
            ).refusal
    assert refused == {
        key: (
            INVALID,
            f"origin.node_number {key[1]} is invalid: expected another node's number, >= 1 "
            "(this node is 1)",
        )
        for key in refused
    }


def test_an_origin_epoch_not_made_as_nodes_make_it_is_refused(wire: RawNode) -> None:
    huge = "e" * 2**20
    bad = {
        "": "''",
        "e0": "'e0'",
        "00062A0B1C2D3E4F": "'00062A0B1C2D3E4F'",
        "00062a0b1c2d3e4": "'00062a0b1c2d3e4'",
        "00062a0b1c2d3e4f0": "'00062a0b1c2d3e4f0'",
        huge: shown_long(huge),
    }
    refused = {}
    for epoch, shown in bad.items():
        expected = (INVALID, f"origin.epoch {shown} is invalid: expected {EPOCH_RULE}")
        for method in METHODS:
            if method.path.startswith("/ramster.api.v1.Peer/") and not method.path.endswith(
                "/Hello"
            ):
                origin = peer_pb2.Origin(node_number=2, epoch=epoch)
                answer = wire.send(method, method.request(origin=origin)).refusal
                if answer != expected:
                    refused[method.path, epoch[:20]] = answer
    assert refused == {}
    # The other epochs a peer names are held to the same form.
    for field, named, request, path in (
        ("holder_epoch", "holder_epoch", peer_pb2.PeerPutRequest, "PutPages"),
        ("keep", "keep[1]", peer_pb2.RecoverRequest, "Recover"),
    ):
        origin = peer_pb2.Origin(node_number=2, epoch=PEER_EPOCH)
        for epoch, shown in bad.items():
            if not epoch and field == "holder_epoch":
                continue  # empty: the holder's epoch unknown
            # Recover names a list of epochs: the bad one second, after a good one.
            value = [PEER_EPOCH, epoch] if field == "keep" else epoch
            message = request(origin=origin, **{field: value})
            answer = (wire.first if path == "Recover" else wire.call)(
                f"/ramster.api.v1.Peer/{path}", message
            )
            assert answer.refusal == (
                INVALID,
                f"{named} {shown} is invalid: expected {EPOCH_RULE}",
            )
    too_many = peer_pb2.RecoverRequest(
        origin=peer_pb2.Origin(node_number=2, epoch=PEER_EPOCH), keep=[PEER_EPOCH] * 65
    )
    assert wire.first("/ramster.api.v1.Peer/Recover", too_many).refusal == (
        INVALID,
        "keep '65 epochs' is invalid: expected at most 64",
    )


def test_a_peer_page_version_the_origin_cannot_have_made_is_refused(wire: RawNode) -> None:
    """Versions count microseconds from a node's start: one far ahead of this node's clock
    would outrank every real copy of the key, which would then be dropped in its favour."""
    now = time.time_ns() // 1000
    for version in (0, 2**64 - 1, 2**63, now + 2 * HOUR_US):
        answer = peer_put(wire, peer_page(1, version=version))
        assert answer.refusal == (
            INVALID,
            f"pages[0].version {version} is invalid: expected {VERSION_RULE}",
        )
        flush = peer_pb2.PeerFlushPagesRequest(
            origin=peer_pb2.Origin(node_number=2, epoch=PEER_EPOCH),
            keys=[peer_pb2.RemoteKey(pool=1, oid=oid(5), index=1, version=version)],
        )
        if version:  # 0 flushes any version
            assert wire.call("/ramster.api.v1.Peer/FlushPages", flush).refusal == (
                INVALID,
                f"keys[0].version {version} is invalid: expected 0 (any version) or {VERSION_RULE}",
            )
    assert peer_held(wire, 1) == [None]
    # Within the hour a clock may run ahead, a version is believed.
    ahead = now + HOUR_US // 2
    stored = peer_put(wire, peer_page(1, version=ahead), peer_page(2, version=now))
    assert list(stored.parsed(peer_pb2.PeerPutResponse).results) == [tmem_pb2.PUT_STATUS_STORED] * 2
    assert peer_held(wire, 1, 2) == [(lz4_of(page(1)), ahead), (lz4_of(page(2)), now)]


def test_huge_peer_strings_are_refused_with_messages_that_fit_a_grpc_status(
    wire: RawNode,
) -> None:
    huge = "c" * 65536
    pool = peer_pb2.PoolRecord(pool=1, client=huge, pool_id=0, persistent=True, page_size=4096)
    cases = [
        (
            peer_put(wire, peer_page(1), pools=[pool]),
            f"pools[0].client {shown_long(huge)} is invalid: expected a non-empty name of at most "
            "328 characters",  # a label of 256 inside an identity: role:name/label
        ),
        (
            peer_put(wire, epoch=huge),
            f"origin.epoch {shown_long(huge)} is invalid: expected {EPOCH_RULE}",
        ),
    ]
    assert [answer.refusal for answer, _ in cases] == [(INVALID, text) for _, text in cases]
    assert all(len(answer.details) <= 1024 for answer, _ in cases)
    hello = peer_pb2.HelloRequest(cluster=huge, node_name=huge, protocol_version=1)
    answer = wire.call("/ramster.api.v1.Peer/Hello", hello)
    assert answer.code == PRECONDITION and len(answer.details) <= 1024, answer.details[:200]


def test_a_peer_get_never_frees_what_it_answers(wire: RawNode) -> None:
    """A holder keeps a copy until its origin flushes it, whatever a caller asks: a get-and-free
    whose answer was lost on the way would lose the origin's page (issue 10 item 2). The field
    an older origin set for it (PeerGetRequest field 3, `free`) is reserved and ignored."""
    assert peer_put(wire, peer_page(0)).parsed(peer_pb2.PeerPutResponse).results == [
        tmem_pb2.PUT_STATUS_STORED
    ]
    request = peer_pb2.PeerGetRequest(origin=peer_pb2.Origin(node_number=2, epoch=PEER_EPOCH))
    request.keys.add(pool=1, oid=oid(5), index=0)
    free = bytes([3 << 3, 1])  # field 3, varint 1: free = true
    answer = wire.call("/ramster.api.v1.Peer/GetPages", request.SerializeToString() + free)
    assert list(answer.parsed(peer_pb2.PeerGetResponse).found) == [True]
    assert peer_held(wire, 0) == [(lz4_of(page(0)), 1)]


def test_lean_puts_whose_fields_disagree_are_refused_naming_them_and_store_nothing(
    wire: RawNode,
) -> None:
    pool = new_pool(wire, persistent=True)
    good = raw_batch(page(1), page(2))
    lz4, same = tmem_pb2.PAGE_ENCODING_LZ4, tmem_pb2.PAGE_ENCODING_SAME_FILLED
    raw = tmem_pb2.PAGE_ENCODING_UNSPECIFIED
    reserved = tmem_pb2.KeyBatch(
        oid_word0=[1, U64_MAX], oid_word1=[0, U64_MAX], oid_word2=[0, U64_MAX], indexes=[0, 1]
    )
    every_word = (
        "expected PAGE_ENCODING_UNSPECIFIED, PAGE_ENCODING_LZ4, PAGE_ENCODING_SAME_FILLED or "
        "PAGE_ENCODING_ZSTD"
    )
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {"keys": tmem_pb2.KeyBatch(oid_word0=[1, 1, 1], indexes=[0, 1])},
            "keys.oid_word0 has 3 entries for 2 keys.indexes: expected one per key",
        ),
        (
            {"keys": tmem_pb2.KeyBatch(oid_word0=[1, 1], oid_word1=[0], indexes=[0, 1])},
            "keys.oid_word1 has 1 entries for 2 keys.indexes: expected one per key or none",
        ),
        (
            {"keys": tmem_pb2.KeyBatch(oid_word0=[1, 1], oid_word2=[0] * 3, indexes=[0, 1])},
            "keys.oid_word2 has 3 entries for 2 keys.indexes: expected one per key or none",
        ),
        ({"lengths": [8192]}, "lengths has 1 entries for 2 keys: expected one per key"),
        ({"encodings": [raw] * 3}, "encodings has 3 entries for 2 keys: expected one per key"),
        (
            {"page_lengths": [4096]},
            "page_lengths has 1 entries for 2 keys: expected one per key or none",
        ),
        ({"lengths": [4096, 4095]}, "lengths add up to 8191 bytes, data has 8192"),
        ({"lengths": [4096, 4097]}, "lengths add up to 8193 bytes, data has 8192"),
        ({"encodings": [raw, 3]}, f"pages[1].encoding 3 is invalid: {every_word}"),
        ({"encodings": [raw, -1]}, f"pages[1].encoding -1 is invalid: {every_word}"),
        ({"page_lengths": [0, 8192]}, "pages[1].length 8192 != pool page_size 4096"),
        (
            {"data": page(1) + page(2) + b"x", "lengths": [4096, 4097]},
            "pages[1].data length 4097 != pool page_size 4096",
        ),
        (
            {"data": page(1) + lz4_of(page(2) * 2), "lengths": [4096, len(lz4_of(page(2) * 2))]}
            | {"encodings": [raw, lz4]},
            "pages[1].data length 8192 != pool page_size 4096",
        ),
        (
            {"data": page(1) + b"\x07", "lengths": [4096, 1], "encodings": [raw, same]},
            "pages[1].length is 0: a same-filled page states its length, the pool page_size 4096",
        ),
        (
            {"data": page(1) + b"\x07\x07", "lengths": [4096, 2], "encodings": [raw, same]}
            | {"page_lengths": [0, 4096]},
            "pages[1].data length 2 is invalid: a same-filled page is 1 byte",
        ),
        (
            {"keys": reserved},
            f"pages[1].oid {ALL_ONES} is invalid: expected not the reserved all-ones oid",
        ),
        (
            raw_batch(*[b"\x07"] * 1025) | {"encodings": [same] * 1025},
            "keys count 1025 exceeds the batch limit 1024",
        ),
    ]
    for fields, message in cases:
        answer = wire.tmem("PutPageBatch", client="app", pool_id=pool, **(good | fields))
        assert answer.refusal == (INVALID, message), message
    assert get(wire, pool, (1, 0), (1, 1)) == [None, None]
    # The same batch, whole, is stored.
    stored = wire.tmem("PutPageBatch", client="app", pool_id=pool, **good)
    assert (
        list(stored.parsed(tmem_pb2.PutPageBatchResponse).results)
        == [tmem_pb2.PUT_STATUS_STORED] * 2
    )
    assert get(wire, pool, (1, 0), (1, 1)) == [page(1), page(2)]


def test_lean_gets_with_bad_keys_or_mode_are_refused_naming_them_and_free_nothing(
    wire: RawNode,
) -> None:
    pool = new_pool(wire)  # ephemeral and private: a get frees
    wire.tmem("PutPageBatch", client="app", pool_id=pool, **raw_batch(page(1)))
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {"keys": tmem_pb2.KeyBatch(oid_word0=[1], indexes=[0, 1])},
            "keys.oid_word0 has 1 entries for 2 keys.indexes: expected one per key",
        ),
        (
            {"keys": tmem_pb2.KeyBatch(oid_word0=[1, U64_MAX], oid_word2=[0, 2], indexes=[0, 0])}
            | {"mode": 3},
            "mode 3 is invalid: expected GET_MODE_UNSPECIFIED, GET_MODE_FREE or GET_MODE_KEEP",
        ),
        (
            {
                "keys": tmem_pb2.KeyBatch(
                    oid_word0=[1, U64_MAX],
                    oid_word1=[0, U64_MAX],
                    oid_word2=[0, U64_MAX],
                    indexes=[0, 0],
                )
            },
            f"keys[1].oid {ALL_ONES} is invalid: expected not the reserved all-ones oid",
        ),
        (
            {"keys": tmem_pb2.KeyBatch(oid_word0=[1] * 1025, indexes=range(1025))},
            "keys count 1025 exceeds the batch limit 1024",
        ),
    ]
    for fields, message in cases:
        answer = wire.tmem("GetPageBatch", client="app", pool_id=pool, **fields)
        assert answer.refusal == (INVALID, message), message
    keys = tmem_pb2.KeyBatch(oid_word0=[2, 1], indexes=[0, 0])
    answer = wire.tmem("GetPageBatch", client="app", pool_id=pool, keys=keys)
    response = answer.parsed(tmem_pb2.GetPageBatchResponse)
    block = lz4.block.decompress(response.data, uncompressed_size=4096)
    assert (list(response.lengths), block, response.page_size) == (
        [0, len(response.data)],
        page(1),
        4096,
    )
    assert list(response.encodings) == [
        tmem_pb2.PAGE_ENCODING_UNSPECIFIED,
        tmem_pb2.PAGE_ENCODING_LZ4,
    ]
    assert get(wire, pool, (1, 0)) == [None]  # the pool's rule: that get freed it
