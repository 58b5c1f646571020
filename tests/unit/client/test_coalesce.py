"""Coalescing without a network: a recording async function stands in for the RPC."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from ramster.client._coalesce import Coalescer
from ramster.errors import InternalError, InvalidArgument, Unavailable

T = TypeVar("T")


class FakeSend:
    """Records each batch as (key, items); answers each item with item * 10. Raises
    InvalidArgument for a batch holding an item in `bad`, or `error` for any batch; `gate`, when
    set, holds every send until it opens; `drop` results are left off every answer."""

    def __init__(self, bad: tuple[int, ...] = (), error: Exception | None = None) -> None:
        self.batches: list[tuple[str, list[int]]] = []
        self.bad = bad
        self.error = error
        self.gate: asyncio.Event | None = None
        self.drop = 0

    async def __call__(self, key: str, items: list[int]) -> list[int]:
        self.batches.append((key, list(items)))
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0)  # a real send yields to the loop
        if self.error is not None:
            raise self.error
        for item in items:
            if item in self.bad:
                raise InvalidArgument(f"pages[{items.index(item)}].data length 4095 != 4096")
        return [item * 10 for item in items][self.drop :]

    def sizes(self) -> list[int]:
        return [len(items) for _, items in self.batches]


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def submit_all(
    coalescer: Coalescer[str, int, int], items: range, key: str = "pool"
) -> list[int | BaseException]:
    return await asyncio.gather(
        *(coalescer.submit(key, item) for item in items), return_exceptions=True
    )


@pytest.mark.parametrize("callers", [1, 2, 10, 64])
def test_concurrent_callers_share_one_batch(callers: int) -> None:
    send = FakeSend()
    coalescer = Coalescer(send, max_batch=64)
    results = run(submit_all(coalescer, range(callers)))
    assert send.batches == [("pool", list(range(callers)))]
    assert results == [item * 10 for item in range(callers)]
    assert coalescer.batches == 1


@pytest.mark.parametrize(
    ("callers", "max_batch", "sizes"),
    [(65, 64, [64, 1]), (150, 64, [64, 64, 22]), (128, 64, [64, 64]), (5, 1, [1] * 5)],
)
def test_a_full_batch_leaves_at_once_and_the_rest_follow(
    callers: int, max_batch: int, sizes: list[int]
) -> None:
    send = FakeSend()
    results = run(submit_all(Coalescer(send, max_batch=max_batch), range(callers)))
    assert send.sizes() == sizes
    assert [item for _, items in send.batches for item in items] == list(range(callers))
    assert results == [item * 10 for item in range(callers)]


def test_callers_who_await_each_other_are_not_batched() -> None:
    send = FakeSend()
    coalescer = Coalescer(send)

    async def one_by_one() -> list[int]:
        return [await coalescer.submit("pool", item) for item in range(3)]

    assert run(one_by_one()) == [0, 10, 20]
    assert send.sizes() == [1, 1, 1]


def test_each_key_has_its_own_batch() -> None:
    send = FakeSend()
    coalescer = Coalescer(send)

    async def interleaved() -> list[int]:
        keys = ["a", "b", "a", "b", "a"]
        return await asyncio.gather(*(coalescer.submit(k, i) for i, k in enumerate(keys)))

    assert run(interleaved()) == [0, 10, 20, 30, 40]
    assert send.batches == [("a", [0, 2, 4]), ("b", [1, 3])]


def test_callers_arriving_while_a_batch_is_in_flight_open_the_next_one() -> None:
    send = FakeSend()
    coalescer = Coalescer(send)

    async def two_waves() -> list[int]:
        send.gate = asyncio.Event()
        first = [asyncio.create_task(coalescer.submit("pool", i)) for i in range(3)]
        while not send.batches:
            await asyncio.sleep(0)
        second = [asyncio.create_task(coalescer.submit("pool", i)) for i in range(3, 5)]
        while len(send.batches) < 2:
            await asyncio.sleep(0)
        send.gate.set()
        return await asyncio.gather(*first, *second)

    assert run(two_waves()) == [0, 10, 20, 30, 40]
    assert send.batches == [("pool", [0, 1, 2]), ("pool", [3, 4])]


def test_a_batch_leaves_on_the_next_loop_turn() -> None:
    send = FakeSend()
    coalescer = Coalescer(send)

    async def lone_caller() -> int:
        task = asyncio.create_task(coalescer.submit("pool", 7))
        await asyncio.sleep(0)  # the caller opens the batch and starts the task that sends it
        assert send.batches == []
        assert repr(coalescer) == "<Coalescer max_batch=64 batches=0 open=1 in_flight=1>"
        await asyncio.sleep(0)  # next turn: the task closes the batch and sends it
        assert send.batches == [("pool", [7])]
        assert repr(coalescer) == "<Coalescer max_batch=64 batches=1 open=0 in_flight=1>"
        return await task

    assert run(lone_caller()) == 70
    assert repr(coalescer) == "<Coalescer max_batch=64 batches=1 open=0 in_flight=0>"


def test_an_item_refused_as_invalid_fails_only_its_own_caller() -> None:
    send = FakeSend(bad=(3,))
    results = run(submit_all(Coalescer(send, split_on=(InvalidArgument,)), range(5)))
    assert results[:3] == [0, 10, 20]
    assert results[4] == 40
    error = results[3]
    assert isinstance(error, InvalidArgument)
    assert error.message == "pages[0].data length 4095 != 4096"
    # The whole batch was refused (nothing applied), then each item went alone.
    assert send.sizes() == [5, 1, 1, 1, 1, 1]


def test_without_split_on_the_batch_error_reaches_every_caller() -> None:
    send = FakeSend(bad=(3,))
    results = run(submit_all(Coalescer(send), range(5)))
    assert [type(result) for result in results] == [InvalidArgument] * 5
    assert send.sizes() == [5]


def test_an_error_not_listed_in_split_on_is_not_retried() -> None:
    send = FakeSend(error=Unavailable("Tmem/GetPages: node unavailable (connection refused)"))
    results = run(submit_all(Coalescer(send, split_on=(InvalidArgument,)), range(4)))
    assert [str(result) for result in results] == [
        "Tmem/GetPages: node unavailable (connection refused)"
    ] * 4
    assert all(isinstance(result, Unavailable) for result in results)
    assert send.sizes() == [4]


def test_a_send_answering_too_few_results_fails_every_caller() -> None:
    send = FakeSend()
    send.drop = 1
    results = run(submit_all(Coalescer(send), range(3)))
    assert all(isinstance(result, InternalError) for result in results)
    assert str(results[0]) == "a batch of 3 items got 2 results"


def test_a_cancelled_caller_leaves_the_others_their_results() -> None:
    send = FakeSend()
    coalescer = Coalescer(send)

    async def one_gives_up() -> list[int | BaseException]:
        tasks = [asyncio.create_task(coalescer.submit("pool", i)) for i in range(3)]
        await asyncio.sleep(0)
        tasks[1].cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = run(one_gives_up())
    assert results[0] == 0 and results[2] == 20
    assert isinstance(results[1], asyncio.CancelledError)
    assert send.batches == [("pool", [0, 1, 2])]


def test_drain_sends_open_batches_and_waits_for_them() -> None:
    send = FakeSend()
    coalescer = Coalescer(send)

    async def drained() -> list[int]:
        tasks = [asyncio.create_task(coalescer.submit("pool", i)) for i in range(2)]
        await asyncio.sleep(0)
        await coalescer.drain()
        assert all(task.done() for task in tasks)
        return [task.result() for task in tasks]

    assert run(drained()) == [0, 10]
