"""Pipelining: a batch larger than one message holds, sent as consecutive chunks with several in
flight.

Each chunk fits one message; at most `WINDOW` chunks are in flight at once, so a bulk call pins
at most `WINDOW` messages' worth of bytes, however large it is. Results come back in the order of
the items. A chunk that fails stops the sending of further chunks; the chunks already in flight
are waited for (their pages may be stored, none is sent twice), then the error of the earliest
failed chunk is raised. Pure asyncio: the send function is given, and no network is needed to
test this module. Not here: coalescing concurrent single calls (`ramster.client._coalesce`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from ramster.page import DEFAULT_PAGE_SIZE
from ramster.wire.limits import MAX_BATCH

T = TypeVar("T")
R = TypeVar("R")

WINDOW = 4
"""Chunks in flight at once: enough to keep the node and the wire busy while the client packs or
unpacks the next (measured: 4 calls in flight move about twice the pages of one at a time)."""


def chunk_length(page_size: int) -> int:
    """Items in one chunk of pages of `page_size` bytes: as many as one message holds."""
    return max(1, min(MAX_BATCH, MAX_BATCH * DEFAULT_PAGE_SIZE // max(page_size, 1)))


async def in_chunks(
    items: Sequence[T],
    page_size: int,
    send: Callable[[Sequence[T]], Awaitable[list[R]]],
    window: int = WINDOW,
) -> list[R]:
    """`send` over consecutive chunks of `items` that each fit one message, at most `window` at
    a time; the results of every item, in order."""
    length = chunk_length(page_size)
    chunks = [items[start : start + length] for start in range(0, len(items), length)]
    if len(chunks) <= 1:  # the common case: no task needed
        return list(await send(chunks[0])) if chunks else []
    sent: list[asyncio.Task[list[R]]] = []
    in_flight: set[asyncio.Task[list[R]]] = set()
    try:
        for chunk in chunks:
            if len(in_flight) >= window:
                done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                if any(task.exception() is not None for task in done):
                    break
            task = asyncio.ensure_future(send(chunk))
            sent.append(task)
            in_flight.add(task)
        if in_flight:
            await asyncio.wait(in_flight)
    except asyncio.CancelledError:
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
        raise
    errors = [task.exception() for task in sent]  # every one retrieved, so none is logged
    first = next((error for error in errors if error is not None), None)
    if first is not None:
        raise first
    return [result for task in sent for result in task.result()]
