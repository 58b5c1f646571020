"""A node's dictionaries of persistent zstd pools without etcd: a plain fake of the record
(`ramster.remote.dictionary_book.DictionaryBook`) and a node that keeps them through it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from ramster.backend import Backend
from ramster.errors import Unavailable
from ramster.params import ModuleParams
from ramster.tiered import TieredTmem
from ramster.zcache import ZcacheConfig


class FakeBook:
    """Records what it is asked (`asked`: saves begun); `save` waits for `gate`, and fails if
    `refuse`."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.gate = asyncio.Event()
        self.asked = 0
        self.saved: list[tuple[int, int]] = []
        self.dropped: list[int] = []

    async def save(self, pool_uid: int, dict_id: int, data: bytes) -> None:
        self.asked += 1
        await self.gate.wait()
        if self.refuse:
            raise Unavailable("etcd at x is unreachable (writing)")
        self.saved.append((pool_uid, dict_id))

    async def drop(self, dict_ids: Sequence[int]) -> None:
        self.dropped.extend(dict_ids)


def recording_node(book: FakeBook) -> tuple[Backend, TieredTmem]:
    backend = Backend(
        ZcacheConfig(memory=64 << 20), params=ModuleParams(dict_samples=100, dict_size=16384)
    )
    store = backend.store
    assert store is not None
    store.dictionaries.keeps_persistent = True
    return backend, TieredTmem(backend, None, book)  # type: ignore[arg-type]


async def until(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not done():
        assert time.monotonic() < deadline, f"{what} not reached within 10 s"
        await asyncio.sleep(0.01)
