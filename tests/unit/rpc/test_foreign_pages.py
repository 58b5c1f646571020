"""A holder's checks of the keys and pages a peer sends (`ramster.rpc.foreign_pages`): the
fields are named only in a refusal, and a refusal names the first bad field of the first bad
entry. Real nodes refuse the same requests in tests/integration/test_peer_batches.py and
test_validation.py."""

from __future__ import annotations

from zlib import crc32

import pytest

from ramster.api.v1 import peer_pb2, tmem_pb2
from ramster.errors import InvalidArgument
from ramster.page import PackedPage
from ramster.rpc.foreign_pages import (
    VERSION_RULE,
    flush_keys_of,
    latest_version,
    page_of,
    pages_of,
)

ALL_ONES = 2**64 - 1
SEALED = bytes(100)  # a sealed page: only its length is checked here


def key(pool: int, word0: int, index: int, version: int) -> peer_pb2.RemoteKey:
    oid = tmem_pb2.Oid(word0=word0, word1=word0, word2=word0)
    return peer_pb2.RemoteKey(pool=pool, oid=oid, index=index, version=version)


def test_flush_keys_are_read_with_their_versions_and_zero_means_any() -> None:
    request = peer_pb2.PeerFlushPagesRequest(keys=[key(2, 7, 3, 1000), key(5, 8, 0, 0)])
    assert flush_keys_of(request) == [(2, (7, 7, 7), 3, 1000), (5, (8, 8, 8), 0, 0)]


def test_a_flush_key_is_refused_for_its_oid_before_its_version() -> None:
    late = latest_version() + 10**9
    both = peer_pb2.PeerFlushPagesRequest(keys=[key(2, 7, 3, 1), key(2, ALL_ONES, 0, late)])
    with pytest.raises(InvalidArgument) as refused:
        flush_keys_of(both)
    expected = f"keys[1].oid {(ALL_ONES,) * 3} is invalid: expected not the reserved all-ones oid"
    assert refused.value.message == expected
    too_new = peer_pb2.PeerFlushPagesRequest(keys=[key(2, 7, 3, late)])
    with pytest.raises(InvalidArgument) as refused:
        flush_keys_of(too_new)
    assert refused.value.message == (
        f"keys[0].version {late} is invalid: expected 0 (any version) or {VERSION_RULE}"
    )


def test_a_sealed_page_is_kept_as_it_came_and_its_page_size_checked_first() -> None:
    latest = latest_version()
    sealed = tmem_pb2.PAGE_ENCODING_SEALED
    page = peer_pb2.RemotePage(
        pool=2, persistent=True, oid=tmem_pb2.Oid(word0=7), index=3, version=1000, data=SEALED,
        encoding=sealed, page_size=4096, checksum=crc32(SEALED),
    )  # fmt: skip
    pages = pages_of([page])
    assert (pages.pool_uids, pages.keys, pages.versions, pages.persistent) == (
        [2],
        [((7, 0, 0), 3)],
        [1000],
        [True],
    )
    assert list(pages.pages) == [PackedPage(SEALED, False, 4096)]
    with pytest.raises(InvalidArgument) as refused:  # its checksum is wrong too
        page_of(4, (7, 0, 0), 0, SEALED, sealed, 4097, 0, latest)
    assert refused.value.message == (
        "pages[4].page_size 4097 is invalid: expected a power of two in 512..65536"
    )
