"""`DictionaryBook` (`ramster.remote.dictionary_book`): what it writes to the record, sealed or
not, and what it reads back; a record damaged, swapped or moved is unreadable, never another
dictionary. The membership here is a plain object keeping the record in a dict."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from collections.abc import Sequence

import pytest

from ramster.backend import Backend
from ramster.remote.dictionary_book import DictionaryBook, Recorded
from ramster.tmem import PoolSpec
from ramster.tmem.pool import PoolRecord
from ramster.trust.seal import KEY_BYTES, OriginSeal
from ramster.zcache import ZcacheConfig
from ramster.zcache.dictionaries import Samples, Training, train


class Record:
    """The part of a `Membership` the book uses, in memory."""

    def __init__(self, kept: bool = True) -> None:
        self.kept = kept
        self.records: dict[int, str] = {}
        self.next_id = 1

    async def load_dictionaries(self) -> tuple[int, dict[int, str]] | None:
        return (self.next_id, dict(self.records)) if self.kept else None

    async def save_dictionary(self, dict_id: int, record: str) -> None:
        self.next_id = max(self.next_id, dict_id + 1)
        self.records[dict_id] = record

    async def drop_dictionaries(self, dict_ids: Sequence[int]) -> None:
        for dict_id in dict_ids:
            self.records.pop(dict_id, None)


LINES = [
    bytes(random.Random(n).choices(b"abcdefghijklmnopqrstuvwxyz_:{}", k=120)) for n in range(100)
]


def dictionary(dict_id: int) -> bytes:
    """A dictionary trained on pages of lines alike (`dict_id` in its header)."""
    pages = [b"".join(random.Random(n).choices(LINES, k=35))[:4096] for n in range(200)]
    data = train(Training(7, dict_id, Samples(pages), 16384, 1))
    assert data is not None
    return data


def book(record: Record, sealed: bool) -> DictionaryBook:
    seal = OriginSeal("A", b"k" * KEY_BYTES) if sealed else None
    return DictionaryBook(record, seal)  # type: ignore[arg-type]


@pytest.mark.parametrize("sealed", [False, True], ids=["plaintext", "sealed"])
def test_a_recorded_dictionary_reads_back_and_ids_continue(sealed: bool) -> None:
    record, first, second = Record(), dictionary(1), dictionary(2)
    asyncio.run(book(record, sealed).save(7, 1, first))
    asyncio.run(book(record, sealed).save(9, 2, second))
    written = json.loads(record.records[1])
    if sealed:  # not a byte of the dictionary is readable in etcd
        assert sorted(written) == ["pool_uid", "sealed"]
        assert first[8:40] not in base64.b64decode(written["sealed"])
    else:
        assert sorted(written) == ["data", "pool_uid", "sha256"]
    assert written["pool_uid"] == 7
    reader = book(record, sealed)
    assert asyncio.run(reader.load()) == (3, [Recorded(7, first), Recorded(9, second)])
    assert reader.counters == {"zstd_dicts_unreadable": 0}
    asyncio.run(reader.drop([1]))
    assert asyncio.run(reader.load()) == (3, [Recorded(9, second)])


def test_without_a_record_persistent_pools_get_no_dictionary() -> None:
    unrecorded = book(Record(kept=False), sealed=True)
    assert asyncio.run(unrecorded.load()) is None
    backend = Backend(ZcacheConfig(memory=64 << 20))
    assert backend.store is not None
    asyncio.run(unrecorded.restore(backend.store.dictionaries, backend.require()))
    assert not backend.store.dictionaries.keeps_persistent


@pytest.mark.parametrize("sealed", [False, True], ids=["plaintext", "sealed"])
def test_a_damaged_or_misplaced_record_is_unreadable_and_counted(sealed: bool) -> None:
    record = Record()
    writer = book(record, sealed)
    for dict_id in (1, 2, 3):
        asyncio.run(writer.save(7, dict_id, dictionary(dict_id)))
    damaged = json.loads(record.records[1])
    field = "sealed" if sealed else "data"
    raw = bytearray(base64.b64decode(damaged[field]))
    raw[-1] ^= 1
    damaged[field] = base64.b64encode(raw).decode()
    record.records[1] = json.dumps(damaged)
    record.records[2] = record.records[3]  # dictionary 3's record under id 2
    moved = json.loads(record.records[3])
    moved["pool_uid"] = 8  # another pool's
    record.records[3] = json.dumps(moved)
    record.records[4] = "not json"
    reader = book(record, sealed)
    next_id, readable = asyncio.run(reader.load())  # type: ignore[misc]
    assert (next_id, readable) == (5, [])
    assert reader.counters == {"zstd_dicts_unreadable": 4}


def test_restored_dictionaries_go_back_on_the_shelf_and_those_of_pools_not_back_are_erased() -> (
    None
):
    async def run() -> None:
        record = Record()
        writer = book(record, sealed=False)
        await writer.save(1, 3, dictionary(3))
        await writer.save(5, 4, dictionary(4))
        backend = Backend(ZcacheConfig(memory=64 << 20))
        tmem, store = backend.require(), backend.store
        assert store is not None
        shelf = store.dictionaries
        reader = book(record, sealed=False)
        await reader.restore(shelf, tmem)
        assert shelf.keeps_persistent
        assert (sorted(shelf.of_pool(1)), sorted(shelf.of_pool(5))) == ([3], [4])
        pool = tmem.new_pool("app", PoolSpec(persistent=True))
        assert tmem.pool_uid("app", pool) == 6  # above every recorded pool's uid
        # Pool uid 1 came back from the peers; uid 5 did not.
        assert tmem.install_recovered(PoolRecord(1, "app", 1, PoolSpec(persistent=True)))
        await reader.erase_unrecovered(shelf, tmem)
        assert (sorted(shelf.by_id), sorted(record.records)) == ([3], [3])

    asyncio.run(run())
