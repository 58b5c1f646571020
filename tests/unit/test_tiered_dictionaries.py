"""The dictionaries of persistent zstd pools on the node's put path (`ramster.tiered`,
`ramster.dictionary_training`), over a real `Backend`: a dictionary is recorded
(`DictionaryBook.save`) before any page is packed with it; one whose record fails is not used
and its pool samples again; a destroyed pool's are erased from the record. The book is a plain
fake."""

from __future__ import annotations

import asyncio

from ramster.backend import Backend
from ramster.page import Codec
from ramster.tmem import PoolSpec
from tests.support.cluster import record_page
from tests.support.dictionaries import FakeBook, recording_node, until

APP = "app"
SPEC = PoolSpec(persistent=True, codec=Codec("zstd", 1))


def packed_with(backend: Backend, pool: int, oid: int, count: int) -> list[int]:
    """The dictionary ids the pages 0..count-1 of object `oid` were packed with."""
    tmem = backend.require()
    hits = tmem.get_many_packed(APP, pool, [((oid, 0, 0), n) for n in range(count)])
    return [hit.page.dictionary for hit in hits]  # type: ignore[union-attr]


def test_a_persistent_pool_s_dictionary_is_recorded_before_a_page_is_packed_with_it() -> None:
    async def run() -> None:
        book = FakeBook()
        backend, tiered = recording_node(book)
        pool, uid = tiered.new_pool(APP, SPEC)
        await tiered.put(APP, pool, [(1, n, record_page(n)) for n in range(100)])
        shelf = backend.store.dictionaries  # type: ignore[union-attr]
        await until(lambda: book.asked == 1, "the dictionary trained and being recorded")
        assert repr(tiered.dictionaries) == "<DictionaryTraining tasks=1 recorded=True>"
        # Trained, not yet recorded: the pool's pages are not packed with it.
        await tiered.put(APP, pool, [(2, n, record_page(100 + n)) for n in range(10)])
        assert packed_with(backend, pool, 2, 10) == [0] * 10
        assert shelf.current(uid) is None
        book.gate.set()
        await until(lambda: shelf.current(uid) is not None, "the dictionary installed")
        assert book.saved == [(uid, 1)]
        await tiered.put(APP, pool, [(3, n, record_page(200 + n)) for n in range(10)])
        assert packed_with(backend, pool, 3, 10) == [1] * 10
        tiered.destroy_pool(APP, pool)
        await until(lambda: book.dropped == [1], "the record erased")
        await until(lambda: "tasks=0" in repr(tiered.dictionaries), "the erasure's task done")

    asyncio.run(run())


def test_a_dictionary_whose_record_fails_is_not_used_and_its_pool_samples_again() -> None:
    async def run() -> None:
        book = FakeBook(refuse=True)
        book.gate.set()
        backend, tiered = recording_node(book)
        pool, uid = tiered.new_pool(APP, SPEC)
        shelf = backend.store.dictionaries  # type: ignore[union-attr]
        await tiered.put(APP, pool, [(1, n, record_page(n)) for n in range(100)])
        await until(lambda: shelf.wants_sample(uid), "the pool sampling again")
        assert (shelf.current(uid), book.saved, shelf.by_id) == (None, [], {})
        await tiered.put(APP, pool, [(2, n, record_page(100 + n)) for n in range(10)])
        assert packed_with(backend, pool, 2, 10) == [0] * 10

    asyncio.run(run())
