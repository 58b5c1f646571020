"""`DictionaryShelf`: the zstd dictionaries a node trains on the pages of its zstd pools.

Per pool, the shelf samples pages as they arrive; once it has `samples` of them, the pool is due
for training (`due`), which the node runs off its event loop (`train`: pure CPU work) and hands
back (`install`). Same-filled pages are not sampled: any codec packs them to one byte, and they
would take the budget's memory for nothing. A dictionary is used only if it pays for itself on
the samples it was not trained on (`pays_off`): else the pool stays plain zstd and samples no
more (pages unlike each other gain nothing from one). Else the pool's new pages are packed with
it, and the shelf watches their ratio: the first `samples` pages set it; once a later run of as
many has fallen `drift` percent below, the pool samples again and a newer dictionary takes over.

Dictionaries are immutable and named by an id unique on this node (every frame made with one
names it); each counts the stored pages packed with it (`ref`) and is dropped when the last goes
and a newer one has taken over. A dictionary is made of fragments of the pages it was trained on:
it belongs to its pool alone, never packs another pool's pages, and is handed to no one else.
The samples and the dictionaries count against the store's budget (`held_bytes`) at what they
hold: a dictionary at what zstd holds for it (`PageDictionary.held_bytes`, ten times its size),
and its compressor from the first page packed here (`pack`) until a newer one takes over.

A persistent pool's pages outlive the node (their copies on peers come back after a restart), so
its dictionaries are trained only where the node records them (`keeps_persistent`: the node
writes each to etcd before it is installed), are kept while the pool is (a page on a peer is
not counted here), and come back with the record after a restart (`restore`, ids continuing
above every recorded one: `continue_ids`); a pool has at most `MAX_PERSISTENT` of them, then
it retrains no more. Those dropped with their pool are `retired`, for the node to erase from
the record.

Pure: no I/O, no asyncio. Not here: when training runs (`ramster.dictionary_training`), the page
formats (`ramster.page`).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field

import zstandard

from ramster.page import Codec, PackedPage, PoolDictionaries, pack_page
from ramster.page_dictionary import PageDictionary

DEFAULT_SAMPLES = 2000
DEFAULT_SIZE = 32 * 1024
"""32 KiB packs pages as small as 64 KiB (within 0.5 % on heaps of etcd, Redis and Python and on
the bench corpus) and, taking half as much, pays for itself (`pays_off`) on half the saving."""
DEFAULT_DRIFT = 10
MAX_DICTIONARY_ID = (1 << 31) - 1
MAX_PERSISTENT = 4
"""Dictionaries a persistent pool keeps at most (all of them, as long as the pool lives)."""


class Samples:
    """Sample pages, one after another in one buffer. Past glibc's mmap threshold (128 KiB, kept
    there: `ramster.pinning.fix_mmap_threshold`) the buffer is a mapping of its own, given back
    whole once its training is done: kept as 4 KiB bytes apiece, they left holes among the
    pages stored meanwhile (1.2 MB stayed resident in a store of 16 MB). Where each ends is an
    array of 8-byte offsets (a list of ints took 40 bytes a sample, 80 KB for 2,000)."""

    __slots__ = ("_buffer", "_ends")

    def __init__(self, pages: Iterable[bytes] = ()) -> None:
        self._buffer = bytearray()
        self._ends = array("Q")
        for page in pages:
            self.append(page)

    def __repr__(self) -> str:
        return f"<Samples {len(self._ends)} pages, {len(self._buffer)} bytes>"

    def __len__(self) -> int:
        return len(self._ends)

    @property
    def nbytes(self) -> int:
        """Bytes the samples hold: the pages, and where each ends."""
        return len(self._buffer) + self._ends.itemsize * len(self._ends)

    def append(self, page: bytes) -> None:
        self._buffer += page
        self._ends.append(len(self._buffer))

    def pages(self) -> list[bytes]:
        """Each sample, a copy (what zstd's trainer takes)."""
        starts = [0, *self._ends[:-1]]
        with memoryview(self._buffer) as buffer:
            return [bytes(buffer[start:end]) for start, end in zip(starts, self._ends, strict=True)]


@dataclass(slots=True)
class _Pool:
    """What the shelf keeps for one pool."""

    samples: Samples = field(default_factory=Samples)
    persistent: bool = False
    sampling: bool = True
    training: bool = False
    current: int = 0
    ratio: float = 0.0
    """The ratio of the first `samples` pages packed with `current` (0: not known yet)."""
    raw: int = 0
    """Bytes of the pages of this run packed with `current`, before and after."""
    dropped: frozenset[int] = frozenset()
    """Dictionaries this pool had and dropped: a client told to pack with one may still."""
    packed: int = 0


@dataclass(frozen=True, slots=True)
class Training:
    """A pool's samples to train dictionary `dict_id` on (`train`)."""

    pool_uid: int
    dict_id: int
    samples: Samples
    size: int
    level: int


class DictionaryShelf:
    """The dictionaries of this node's zstd pools, and their samples."""

    def __init__(
        self, samples: int = DEFAULT_SAMPLES, size: int = DEFAULT_SIZE, drift: int = DEFAULT_DRIFT
    ) -> None:
        self.samples, self.size, self.drift = samples, size, drift
        self.by_id: dict[int, PageDictionary] = {}
        """Every live dictionary by id: what a reader here decodes with."""
        self._owner: dict[int, int] = {}
        self._refs: dict[int, int] = {}
        self._pools: dict[int, _Pool] = {}
        self._next_id = 1
        self.keeps_persistent = False
        """Whether persistent pools get dictionaries: the node records them (etcd)."""
        self._recorded: set[int] = set()
        """Dictionaries of persistent pools: recorded, and kept as long as their pool."""
        self.retired: list[int] = []
        """Dictionaries of persistent pools dropped with their pool, to erase from the record."""
        self.held_bytes = 0
        """Bytes of the samples (until their training ends) and what the dictionaries kept
        hold (`PageDictionary.held_bytes`, as it changes when one packs or stops packing): the
        store counts them against its budget."""
        self.counters = {
            "zstd_dicts_trained": 0,
            "zstd_dicts_unhelpful": 0,
            "zstd_dicts_dropped": 0,
        }

    def __repr__(self) -> str:
        return f"<DictionaryShelf dictionaries={sorted(self.by_id)} pools={len(self._pools)}>"

    def current(self, pool_uid: int) -> PageDictionary | None:
        """The dictionary pool `pool_uid`'s new pages are packed with, if any."""
        pool = self._pools.get(pool_uid)
        return self.by_id.get(pool.current) if pool is not None and pool.current else None

    def of_pool(self, pool_uid: int) -> PoolDictionaries:
        """Pool `pool_uid`'s dictionaries by id (those a page of that pool may name), and those
        it dropped."""
        pool = self._pools.get(pool_uid)
        return PoolDictionaries(
            {i: d for i, d in self.by_id.items() if self._owner[i] == pool_uid},
            frozenset() if pool is None else pool.dropped,
        )

    def is_persistent(self, pool_uid: int) -> bool:
        """Whether pool `pool_uid` is persistent: its dictionaries are recorded."""
        pool = self._pools.get(pool_uid)
        return pool is not None and pool.persistent

    def recorded_pools(self) -> set[int]:
        """The pools that have recorded dictionaries (persistent pools')."""
        return {self._owner[dict_id] for dict_id in self._recorded}

    def sample(self, pool_uid: int, page: bytes, persistent: bool = False) -> None:
        """Keep `page` of pool `pool_uid` (`persistent` or not) as a sample if the pool is
        sampling (and the page is not same-filled)."""
        pool = self._pools.get(pool_uid)
        if pool is None:
            pool = self._pools[pool_uid] = _Pool(persistent=persistent)
        if pool.sampling and len(pool.samples) < self.samples and not _same_filled(page):
            held = pool.samples.nbytes
            pool.samples.append(page)
            self.held_bytes += pool.samples.nbytes - held

    def trains(self, persistent: bool) -> bool:
        """Whether pools of this class (`persistent` or not) get dictionaries here."""
        return not persistent or self.keeps_persistent

    def packs_with(self, pool_uid: int) -> int | None:
        """How a client best sends pool `pool_uid`'s next pages: None raw, while the pool
        samples them (or has not begun) or trains on its samples; else packed with its current
        dictionary, this id (0: none, it did not pay off)."""
        pool = self._pools.get(pool_uid)
        if pool is None or pool.sampling or pool.training:
            return None
        return pool.current

    def wants_sample(self, pool_uid: int) -> bool:
        pool = self._pools.get(pool_uid)
        return pool is None or (pool.sampling and len(pool.samples) < self.samples)

    def packed(self, pool_uid: int, page: PackedPage) -> None:
        """Note a page of the pool packed with its current dictionary: once their ratio drifts
        `drift` percent below the dictionary's own, the pool samples again."""
        pool = self._pools.get(pool_uid)
        if pool is None or not pool.current or page.dictionary != pool.current:
            return
        pool.raw += page.page_size
        pool.packed += len(page.payload)
        if pool.sampling or pool.raw < self.samples * page.page_size:
            return
        ratio = pool.raw / max(1, pool.packed)
        pool.raw = pool.packed = 0
        if not pool.ratio:
            pool.ratio = ratio
        elif ratio * 100 < pool.ratio * (100 - self.drift) and self._may_retrain(pool_uid, pool):
            pool.sampling, pool.samples = True, Samples()

    def _may_retrain(self, pool_uid: int, pool: _Pool) -> bool:
        """A persistent pool keeps every dictionary it had: up to `MAX_PERSISTENT` of them."""
        return not pool.persistent or len(self.of_pool(pool_uid)) < MAX_PERSISTENT

    def due(self, pool_uid: int, level: int) -> Training | None:
        """Pool `pool_uid`'s training, if it has samples enough (for a dictionary of its zstd
        `level`): the pool stops sampling until `install`."""
        pool = self._pools.get(pool_uid)
        if pool is None or not pool.sampling or len(pool.samples) < self.samples:
            return None
        dict_id, self._next_id = self._next_id, self._next_id % MAX_DICTIONARY_ID + 1
        pool.training, pool.sampling = True, False
        training = Training(pool_uid, dict_id, pool.samples, self.size, level)
        pool.samples = Samples()
        return training

    def abandon(self, training: Training) -> None:
        """`training`'s dictionary could not be recorded: its pool samples again."""
        self.held_bytes -= training.samples.nbytes
        pool = self._pools.get(training.pool_uid)
        if pool is not None:
            pool.training, pool.sampling = False, True

    def restore(self, pool_uid: int, data: bytes) -> None:
        """A dictionary of persistent pool `pool_uid` recorded before this node's restart: the
        pages taken back from peers are decoded with it, and the newest one restored packs the
        pool's new pages."""
        dictionary = PageDictionary(data)
        pool = self._pools.setdefault(pool_uid, _Pool(persistent=True, sampling=False))
        self._add(pool_uid, dictionary)
        self._recorded.add(dictionary.dict_id)
        if dictionary.dict_id > pool.current:
            self._take_over(pool, dictionary.dict_id)

    def continue_ids(self, next_id: int) -> None:
        """The record says ids below `next_id` were used: none is given again."""
        self._next_id = max(self._next_id, min(next_id, MAX_DICTIONARY_ID))

    def _add(self, pool_uid: int, dictionary: PageDictionary) -> None:
        self.by_id[dictionary.dict_id] = dictionary
        self.held_bytes += dictionary.held_bytes
        self._owner[dictionary.dict_id] = pool_uid
        self._refs.setdefault(dictionary.dict_id, 0)

    def install(self, training: Training, data: bytes | None) -> None:
        """The dictionary `train` made for `training` takes over its pool (if the pool is still
        here); None: training failed, the pool samples again."""
        self.held_bytes -= training.samples.nbytes
        pool = self._pools.get(training.pool_uid)
        if pool is None:
            return
        pool.training = False
        if data is None:  # no gain (or nothing to train on): plain zstd it stays
            self.counters["zstd_dicts_unhelpful"] += 1
            return
        self._add(training.pool_uid, PageDictionary(data))
        if pool.persistent:
            self._recorded.add(training.dict_id)
        previous = self._take_over(pool, training.dict_id)
        pool.ratio = 0.0
        pool.raw = pool.packed = 0
        self.counters["zstd_dicts_trained"] += 1
        if previous:
            self._drop_if_unused(previous)

    def _take_over(self, pool: _Pool, dict_id: int) -> int:
        """Dictionary `dict_id` packs `pool`'s new pages from now on; the one that did (its
        id returned, 0: none) packs no more, and gives its compressor back."""
        previous, pool.current = pool.current, dict_id
        if previous:
            packed_with = self.by_id[previous]
            held = packed_with.held_bytes
            packed_with.stop_packing()
            self.held_bytes -= held - packed_with.held_bytes
        return previous

    def pack(self, pool_uid: int, page: bytes, codec: Codec) -> PackedPage:
        """`page` of pool `pool_uid` packed with `codec`, and with the pool's current
        dictionary, if it has one: its first page makes its compressor, charged here."""
        dictionary = self.current(pool_uid)
        if dictionary is None:
            return pack_page(page, codec)
        held = dictionary.held_bytes
        packed = pack_page(page, codec, dictionary)
        self.held_bytes += dictionary.held_bytes - held
        self.packed(pool_uid, packed)
        return packed

    def ref(self, dict_id: int, pages: int) -> None:
        """`pages` more stored pages (fewer if negative) packed with dictionary `dict_id`."""
        if dict_id not in self._refs:
            return  # a page of another node's dictionary, held here packed
        self._refs[dict_id] += pages
        if not self._refs[dict_id]:
            self._drop_if_unused(dict_id)

    def forget_pool(self, pool_uid: int) -> None:
        """Pool `pool_uid` is gone: its samples and every dictionary no page uses."""
        pool = self._pools.pop(pool_uid, None)
        if pool is not None:
            self.held_bytes -= pool.samples.nbytes
            for dict_id in [i for i, uid in self._owner.items() if uid == pool_uid]:
                self._drop_if_unused(dict_id)

    def _drop_if_unused(self, dict_id: int) -> None:
        owner = self._pools.get(self._owner[dict_id])
        if self._refs[dict_id] or (owner is not None and owner.current == dict_id):
            return
        if dict_id in self._recorded:
            if owner is not None:
                return  # a page of it may be on a peer: it stays as long as its pool
            self._recorded.discard(dict_id)
            self.retired.append(dict_id)
        if owner is not None:
            owner.dropped |= {dict_id}
        self.held_bytes -= self.by_id[dict_id].held_bytes
        del self.by_id[dict_id], self._owner[dict_id], self._refs[dict_id]
        self.counters["zstd_dicts_dropped"] += 1


def _same_filled(page: bytes) -> bool:
    return page.count(page[:1]) == len(page)


HELD_OUT = 5
"""One sample in this many is kept out of training, to judge the dictionary on."""


def pays_off(size: int, pages: int, held_out: int, alone: int, packed: int) -> bool:
    """Whether a dictionary of `size` bytes is worth keeping: it packs `held_out` pages it was
    not trained on in `packed` bytes, which zstd alone packs in `alone`; at that rate, the
    `pages` pages it was trained on (a pool has at least as many) must save more than it takes.

    A fixed share of gain would refuse a small but real one on a large pool, and accept a
    dictionary larger than what it saves on a small one. Pages are packed with the dictionary's
    content alone (`ramster.page_dictionary`: at zstd's fast levels its entropy tables, reused
    unweighed, packed the bench corpus larger than zstd alone); still, a dictionary trained on
    pages unlike those to come saves nothing. Hence the judgement on held-out pages."""
    return (alone - packed) * pages > size * held_out


def train(training: Training) -> bytes | None:
    """A dictionary of `training.size` bytes trained on its samples, named `training.dict_id`;
    None if it does not pay for itself on the samples it was not trained on (`pays_off`), or
    zstd finds nothing to train on. CPU work, about a second for 2,000 pages: the node runs it
    in a thread, off its event loop."""
    pages = training.samples.pages()
    held_out = pages[::HELD_OUT]
    samples: list[bytes | bytearray | memoryview] = [
        page for n, page in enumerate(pages) if n % HELD_OUT
    ]
    try:
        trained = zstandard.train_dictionary(
            training.size, samples, dict_id=training.dict_id, level=training.level
        )
    except zstandard.ZstdError:
        return None
    data: bytes = trained.as_bytes()
    # Compressors of this thread's own: a zstd compressor is not thread-safe, and the node's
    # loop packs pages with those of `ramster.page` meanwhile (sharing one crashed the node).
    with_it = PageDictionary(data)
    plain = zstandard.ZstdCompressor(level=training.level, write_checksum=True)
    packed = sum(len(with_it.pack(page, training.level)) for page in held_out)
    alone = sum(len(plain.compress(page)) for page in held_out)
    if not pays_off(len(data), len(pages), len(held_out), alone, packed):
        return None
    return data
