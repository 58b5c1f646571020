"""Pipelining without a network: a recording async function stands in for the RPC, and counts the
chunks in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from ramster.client._pipeline import WINDOW, chunk_length, in_chunks
from ramster.errors import InvalidArgument, NotFound

CHUNK = chunk_length(4096)


class FakeSend:
    """Records each chunk sent; answers each item with item * 10 after a few loop turns, the
    later chunks of each window of `turns` sooner, so answers arrive out of order. Raises
    `errors[first item of the chunk]` for a chunk listed there."""

    def __init__(self, turns: int = WINDOW, errors: dict[int, Exception] | None = None) -> None:
        self.chunks: list[list[int]] = []
        self.turns = turns
        self.errors = errors or {}
        self.in_flight = 0
        self.peak = 0

    async def __call__(self, items: Sequence[int]) -> list[int]:
        self.chunks.append(list(items))
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            for _ in range(self.turns - (len(self.chunks) - 1) % self.turns):
                await asyncio.sleep(0)
            if items[0] in self.errors:
                raise self.errors[items[0]]
            return [item * 10 for item in items]
        finally:
            self.in_flight -= 1


def test_a_chunk_holds_what_one_message_holds() -> None:
    assert (chunk_length(4096), chunk_length(512), chunk_length(65536)) == (1024, 1024, 64)


@pytest.mark.parametrize("count", [0, 1, CHUNK, CHUNK + 1, 10 * CHUNK + 7])
def test_every_result_comes_back_in_order_and_every_item_is_sent_once(count: int) -> None:
    send = FakeSend()
    items = list(range(count))
    assert asyncio.run(in_chunks(items, 4096, send)) == [item * 10 for item in items]
    assert [len(chunk) for chunk in send.chunks] == [
        min(CHUNK, count - start) for start in range(0, count, CHUNK)
    ]
    assert sorted(item for chunk in send.chunks for item in chunk) == items


def test_at_most_the_window_of_chunks_is_in_flight_and_it_fills() -> None:
    send = FakeSend()
    asyncio.run(in_chunks(list(range(20 * CHUNK)), 4096, send))
    assert (send.peak, WINDOW) == (4, 4)
    send = FakeSend()
    asyncio.run(in_chunks(list(range(20 * CHUNK)), 4096, send, window=2))
    assert send.peak == 2


def test_a_failed_chunk_stops_the_sending_and_its_error_is_raised_after_the_others() -> None:
    refused = InvalidArgument("pages[0].length 100 != pool page_size 4096")
    send = FakeSend(errors={5 * CHUNK: refused})

    async def scenario() -> None:
        with pytest.raises(InvalidArgument) as caught:
            await in_chunks(list(range(20 * CHUNK)), 4096, send)
        assert caught.value is refused
        assert send.in_flight == 0  # every chunk sent was answered before the error is raised

    asyncio.run(scenario())
    firsts = [chunk[0] // CHUNK for chunk in send.chunks]
    # Chunk 5 failed while at most 3 later ones were in flight; none is sent after that.
    assert firsts[:6] == [0, 1, 2, 3, 4, 5]
    assert len(firsts) <= 5 + WINDOW
    assert len(set(firsts)) == len(firsts)  # no chunk sent twice


def test_of_several_failed_chunks_the_earliest_ones_error_is_raised() -> None:
    gone = NotFound("pool_id 3 does not exist for client 'local:local/app'")
    later = InvalidArgument("pages[0].length 100 != pool page_size 4096")
    # Chunk 2 answers after chunk 3 (FakeSend answers later chunks sooner).
    send = FakeSend(errors={2 * CHUNK: gone, 3 * CHUNK: later})
    with pytest.raises(NotFound) as caught:
        asyncio.run(in_chunks(list(range(8 * CHUNK)), 4096, send))
    assert caught.value is gone


def test_a_cancelled_call_cancels_its_chunks_in_flight() -> None:
    send = FakeSend(turns=1000)

    async def scenario() -> None:
        call = asyncio.ensure_future(in_chunks(list(range(20 * CHUNK)), 4096, send))
        while send.in_flight < WINDOW:
            await asyncio.sleep(0)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert (send.in_flight, len(send.chunks)) == (0, WINDOW)

    asyncio.run(scenario())
