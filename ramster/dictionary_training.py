"""`DictionaryTraining`: the zstd dictionaries of this node's pools as its put and get paths use
them — trained after a put, recorded for a persistent pool, erased with it, and served.

A zstd pool samples the pages put into it; once it has samples enough, its next dictionary is
trained in a thread, so the node's loop goes on serving meanwhile, and installed on the loop in
the store it was sampled in. A persistent pool's dictionary is recorded (`DictionaryBook.save`)
before any page is packed with it: if that fails, the pool samples again. The dictionaries gone
with their persistent pool are erased from the record. Clients ask which dictionaries a pool's
pages may name, how to pack their next pages (`pack_advice`), and a dictionary's content.

Not here: which dictionaries a pool has, sampling, training itself (the pure
`ramster.zcache.dictionaries`), the record in etcd (`ramster.remote.dictionary_book`), unpacking
a get's pages (`ramster.tiered.TieredTmem.readable`).
"""

from __future__ import annotations

import asyncio
import logging

from ramster.backend import Backend
from ramster.errors import NotFound, RamsterError
from ramster.page import NO_DICTIONARIES, ZSTD, Dictionaries
from ramster.pinning import give_back_free_heap
from ramster.remote.dictionary_book import DictionaryBook
from ramster.zcache.dictionaries import train

log = logging.getLogger("ramster.tiered")  # the put path's logger, as before the split


class DictionaryTraining:
    """The dictionaries of the pools of `backend`'s loaded store, with `book` to record those
    of persistent pools in (None: they get none)."""

    def __init__(self, backend: Backend, book: DictionaryBook | None = None) -> None:
        self._backend = backend
        self._book = book
        self._tasks: set[asyncio.Task[None]] = set()
        """Dictionaries being trained (`train`) or erased from the record, kept referenced until
        done."""

    def __repr__(self) -> str:
        return f"<DictionaryTraining tasks={len(self._tasks)} recorded={self._book is not None}>"

    def train(self, pool_uid: int, level: int) -> None:
        """Train pool `pool_uid`'s next dictionary if it has samples enough: in a thread, so
        the node's loop goes on serving meanwhile (64 KiB from 2,000 pages takes about a
        second of CPU), then installed on the loop, in the store it was sampled in. A
        persistent pool's is recorded first (`book`): if that fails, the pool samples again."""
        store = self._backend.store
        training = store.dictionaries.due(pool_uid, level) if store is not None else None
        if store is None or training is None:
            return
        shelf = store.dictionaries
        recorded = shelf.is_persistent(pool_uid)

        async def train_and_install() -> None:
            try:
                data = await asyncio.to_thread(train, training)
                # What the training allocated is freed, but not given back by itself.
                await asyncio.to_thread(give_back_free_heap)
                if data is not None and recorded:
                    assert self._book is not None, "a persistent pool sampled with no record"
                    await self._book.save(pool_uid, training.dict_id, data)
            except RamsterError as error:
                log.warning("pool uid %d: dictionary not recorded: %s", pool_uid, error.message)
                shelf.abandon(training)
                return
            finally:
                self._tasks.discard(task)
            if recorded and data is not None and not shelf.is_persistent(pool_uid):
                shelf.retired.append(training.dict_id)  # the pool went meanwhile
            shelf.install(training, data)
            self.erase_retired()

        task = asyncio.get_running_loop().create_task(train_and_install())
        self._tasks.add(task)

    def erase_retired(self) -> None:
        """Erase from the record the dictionaries gone with their persistent pool."""
        store = self._backend.store
        if store is None or not store.dictionaries.retired or self._book is None:
            return
        retired, store.dictionaries.retired = store.dictionaries.retired, []
        task = asyncio.get_running_loop().create_task(self._book.drop(retired))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def of_pool(self, client: str, pool_id: int) -> Dictionaries:
        """The dictionaries a page of `client`'s pool `pool_id` may name."""
        store = self._backend.store
        if store is None:
            return NO_DICTIONARIES
        return store.dictionaries.of_pool(self._backend.require().pool_uid(client, pool_id))

    def pack_advice(self, client: str, pool_id: int) -> int | None:
        """How `client` best sends the next pages of its pool `pool_id`: None raw, while this
        node samples them to train the pool's dictionary; else packed with the pool's codec
        and (zstd) with the dictionary of this id (0: none)."""
        tmem = self._backend.require()
        spec = tmem.pool_spec(client, pool_id)
        store = self._backend.store
        if (
            spec.codec.name != ZSTD
            or store is None
            or not store.dictionaries.trains(spec.persistent)
        ):
            return 0
        return store.dictionaries.packs_with(tmem.pool_uid(client, pool_id))

    def dictionary(self, client: str, pool_id: int, uid: int, dict_id: int) -> bytes:
        """Dictionary `dict_id` of `client`'s pool `pool_id` (of `uid`, 0: any): NOT_FOUND for
        a pool of anyone else, and for an id the pool has no (more) dictionary of."""
        self._backend.require().pool_spec(client, pool_id, uid)
        dictionary = self.of_pool(client, pool_id).get(dict_id)
        if dictionary is None:
            raise NotFound(
                f"dictionary {dict_id} of pool_id {pool_id} is unknown: no page of the pool uses "
                "it (any more)"
            )
        return dictionary.data
