"""`PeerLink` without a peer: how a get is cut into requests whose answers fit one message."""

from __future__ import annotations

from collections.abc import Sequence

from ramster.remote.handles import RemoteRef
from ramster.rpc.peer_link import ANSWER_PAGE_BYTES, answer_chunks
from ramster.wire.limits import MAX_BATCH, MAX_MESSAGE


def refs(*page_sizes: int) -> list[RemoteRef]:
    return [
        RemoteRef(
            node=2,
            obj_id=1,
            pool_uid=1,
            persistent=True,
            oid=(1, 0, 0),
            index=n,
            version=n + 1,
            page_size=size,
        )
        for n, size in enumerate(page_sizes)
    ]


def sizes(chunks: list[Sequence[RemoteRef]]) -> list[int]:
    return [len(chunk) for chunk in chunks]


def test_the_page_bytes_of_an_answer_leave_room_for_its_framing() -> None:
    assert ANSWER_PAGE_BYTES + 64 * 1024 == MAX_MESSAGE


def test_a_get_of_large_pages_is_cut_where_its_answer_would_outgrow_a_message() -> None:
    # 64 KiB pages: 64 of them fill an answer; 130 pages go in three requests, in order.
    asked = refs(*[65536] * 130)
    chunks = answer_chunks(asked)
    assert sizes(chunks) == [64, 64, 2]
    assert [ref for chunk in chunks for ref in chunk] == asked


def test_a_get_of_small_pages_is_cut_at_the_batch_limit() -> None:
    assert sizes(answer_chunks(refs(*[512] * (2 * MAX_BATCH + 1)))) == [MAX_BATCH, MAX_BATCH, 1]
    assert sizes(answer_chunks(refs(*[4096] * MAX_BATCH))) == [MAX_BATCH]


def test_mixed_page_sizes_fill_each_answer_up_to_the_bound() -> None:
    # 4 MiB = 63 pages of 64 KiB + 16 of 4 KiB; the 17th small page opens a second request.
    assert sizes(answer_chunks(refs(*[65536] * 63, *[4096] * 17))) == [79, 1]
    assert answer_chunks([]) == []
