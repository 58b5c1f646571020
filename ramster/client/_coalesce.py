"""Coalescing: concurrent single calls with the same key become one batched call.

The first caller of a key opens a batch and starts the task that sends it, which runs at the
next event-loop turn; callers arriving before then join it; a batch that reaches `max_batch`
items is closed (its task sends it) and the next caller opens a new one. So no caller waits more
than one loop turn for its batch to leave, and no batch exceeds `max_batch`. Each caller gets its
own result; a batch refused as a whole by an error listed in `split_on` is re-sent item by item,
so only the callers whose items caused it see the error. Pure asyncio: the send function is
given, and no network is needed to test this module.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

from ramster.errors import InternalError

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
R = TypeVar("R")


class _Batch(Generic[T, R]):
    __slots__ = ("futures", "items")

    def __init__(self, items: list[T], futures: list[asyncio.Future[R]]) -> None:
        self.items = items
        self.futures = futures


class Coalescer(Generic[K, T, R]):
    """Batches `submit(key, item)` calls into `send(key, items)`, which returns one result per
    item, in order.

    max_batch: the most items one `send` gets (default 64).
    split_on: errors that refuse a whole batch without applying any of it, raised because of
        some of its items (e.g. `InvalidArgument`): such a batch is re-sent one item at a time.
    """

    def __init__(
        self,
        send: Callable[[K, list[T]], Awaitable[Sequence[R]]],
        max_batch: int = 64,
        split_on: tuple[type[Exception], ...] = (),
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch {max_batch} is invalid: expected >= 1")
        self._send = send
        self._max_batch = max_batch
        self._split_on = split_on
        self._open: dict[K, _Batch[T, R]] = {}
        self._in_flight: set[asyncio.Task[None]] = set()
        self.batches = 0
        """Batches sent so far (each re-sent item of a split batch counts as one more)."""

    def __repr__(self) -> str:
        return (
            f"<Coalescer max_batch={self._max_batch} batches={self.batches} "
            f"open={len(self._open)} in_flight={len(self._in_flight)}>"
        )

    async def submit(self, key: K, item: T) -> R:
        """`item`'s result, sent with whatever else is submitted for `key` in this loop turn."""
        loop = asyncio.get_running_loop()
        batch = self._open.get(key)
        if batch is None:
            batch = self._open[key] = _Batch([], [])
            # Its first step runs after the steps already queued: the callers of this turn.
            task = loop.create_task(self._send_open(key, batch))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        future: asyncio.Future[R] = loop.create_future()
        batch.items.append(item)
        batch.futures.append(future)
        if len(batch.items) >= self._max_batch:
            self._close(key, batch)
        return await future

    async def drain(self) -> None:
        """Close every open batch and wait until every batch has been sent and answered."""
        for key, batch in list(self._open.items()):
            self._close(key, batch)
        await asyncio.gather(*self._in_flight)

    def _close(self, key: K, batch: _Batch[T, R]) -> None:
        """No caller joins `batch` any more: the next caller of `key` opens a new one."""
        if self._open.get(key) is batch:
            del self._open[key]

    async def _send_open(self, key: K, batch: _Batch[T, R]) -> None:
        self._close(key, batch)
        await self._deliver(key, batch)

    async def _deliver(self, key: K, batch: _Batch[T, R]) -> None:
        self.batches += 1
        try:
            results = await self._send(key, batch.items)
        except asyncio.CancelledError:
            for future in batch.futures:
                future.cancel()
            raise
        except Exception as error:
            if not isinstance(error, self._split_on) or len(batch.items) == 1:
                return _fail(batch.futures, error)
            results = None  # re-sent below, outside the handler: the errors are not related
        if results is None:
            for item, future in zip(batch.items, batch.futures, strict=True):
                await self._deliver(key, _Batch([item], [future]))
            return
        if len(results) != len(batch.items):
            count = f"a batch of {len(batch.items)} items got {len(results)} results"
            return _fail(batch.futures, InternalError(count))
        for future, result in zip(batch.futures, results, strict=True):
            if not future.done():  # its caller may have been cancelled
                future.set_result(result)


def _fail(futures: Sequence[asyncio.Future[R]], error: BaseException) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(error)
