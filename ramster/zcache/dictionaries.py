"""`DictionaryShelf`: the zstd dictionaries a node trains on the pages of its zstd pools.

Per pool, the shelf samples pages as they arrive; once it has `samples` of them, the pool is due
for training (`due`), which the node runs off its event loop (`train`: pure CPU work) and hands
back (`install`). From then on the pool's new pages are packed with that dictionary, and the
shelf watches their ratio: once it has fallen `drift` percent below the ratio the dictionary
reached on its own samples, the pool samples again and a newer dictionary takes over.

Dictionaries are immutable and named by an id unique on this node (every frame made with one
names it); each counts the stored pages packed with it (`ref`) and is dropped when the last goes
and a newer one has taken over. A dictionary is made of fragments of the pages it was trained on:
it belongs to its pool alone, never packs another pool's pages, and is handed to no one else.

Pure: no I/O, no asyncio. Not here: when training runs (`ramster.tiered`), packing
(`ramster.page`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import zstandard

from ramster.page import PackedPage, PageDictionary

DEFAULT_SAMPLES = 2000
DEFAULT_SIZE = 64 * 1024
DEFAULT_DRIFT = 10
MAX_DICTIONARY_ID = (1 << 31) - 1


@dataclass(slots=True)
class _Pool:
    """What the shelf keeps for one pool."""

    samples: list[bytes] = field(default_factory=list)
    sampling: bool = True
    training: bool = False
    current: int = 0
    trained_ratio: float = 0.0
    raw: int = 0
    """Bytes of the pages packed with `current` since it took over, before and after."""
    packed: int = 0


@dataclass(frozen=True, slots=True)
class Training:
    """A pool's samples to train dictionary `dict_id` on (`train`)."""

    pool_uid: int
    dict_id: int
    samples: list[bytes]
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
        self.held_bytes = 0
        """Bytes of the samples (until their training ends) and the dictionaries kept: the
        store counts them against its budget."""
        self.counters = {"zstd_dicts_trained": 0, "zstd_dicts_dropped": 0}

    def __repr__(self) -> str:
        return f"<DictionaryShelf dictionaries={sorted(self.by_id)} pools={len(self._pools)}>"

    def current(self, pool_uid: int) -> PageDictionary | None:
        """The dictionary pool `pool_uid`'s new pages are packed with, if any."""
        pool = self._pools.get(pool_uid)
        return self.by_id.get(pool.current) if pool is not None and pool.current else None

    def of_pool(self, pool_uid: int) -> dict[int, PageDictionary]:
        """Pool `pool_uid`'s dictionaries by id: those a page of that pool may name."""
        return {i: d for i, d in self.by_id.items() if self._owner[i] == pool_uid}

    def sample(self, pool_uid: int, page: bytes) -> None:
        """Keep `page` of pool `pool_uid` as a sample if the pool is sampling."""
        pool = self._pools.get(pool_uid)
        if pool is None:
            pool = self._pools[pool_uid] = _Pool()
        if pool.sampling and len(pool.samples) < self.samples:
            pool.samples.append(bytes(page))
            self.held_bytes += len(page)

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
        if (
            not pool.sampling
            and pool.raw >= self.samples * page.page_size
            and pool.raw * 100 < pool.trained_ratio * pool.packed * (100 - self.drift)
        ):
            pool.sampling, pool.samples = True, []

    def due(self, pool_uid: int, level: int) -> Training | None:
        """Pool `pool_uid`'s training, if it has samples enough (for a dictionary of its zstd
        `level`): the pool stops sampling until `install`."""
        pool = self._pools.get(pool_uid)
        if pool is None or not pool.sampling or len(pool.samples) < self.samples:
            return None
        dict_id, self._next_id = self._next_id, self._next_id % MAX_DICTIONARY_ID + 1
        pool.training, pool.sampling = True, False
        training = Training(pool_uid, dict_id, pool.samples, self.size, level)
        pool.samples = []
        return training

    def install(self, training: Training, data: bytes | None) -> None:
        """The dictionary `train` made for `training` takes over its pool (if the pool is still
        here); None: training failed, the pool samples again."""
        self.held_bytes -= sum(map(len, training.samples))
        pool = self._pools.get(training.pool_uid)
        if pool is None:
            return
        pool.training = False
        if data is None:
            pool.sampling = True
            return
        dictionary = PageDictionary(data)
        self.by_id[dictionary.dict_id] = dictionary
        self.held_bytes += len(data)
        self._owner[dictionary.dict_id] = training.pool_uid
        self._refs.setdefault(dictionary.dict_id, 0)
        previous, pool.current = pool.current, dictionary.dict_id
        pool.trained_ratio = _ratio(dictionary, training)
        pool.raw = pool.packed = 0
        self.counters["zstd_dicts_trained"] += 1
        if previous:
            self._drop_if_unused(previous)

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
            self.held_bytes -= sum(map(len, pool.samples))
            for dict_id in [i for i, uid in self._owner.items() if uid == pool_uid]:
                self._drop_if_unused(dict_id)

    def _drop_if_unused(self, dict_id: int) -> None:
        owner = self._pools.get(self._owner[dict_id])
        if self._refs[dict_id] or (owner is not None and owner.current == dict_id):
            return
        self.held_bytes -= len(self.by_id[dict_id].data)
        del self.by_id[dict_id], self._owner[dict_id], self._refs[dict_id]
        self.counters["zstd_dicts_dropped"] += 1


def train(training: Training) -> bytes | None:
    """A dictionary of `training.size` bytes trained on its samples, named `training.dict_id`;
    None if zstd finds nothing to train on (samples too few or too alike). CPU work: the node
    runs it in a thread, off its event loop."""
    try:
        samples: list[bytes | bytearray | memoryview] = list(training.samples)
        trained = zstandard.train_dictionary(
            training.size, samples, dict_id=training.dict_id, level=training.level
        )
    except zstandard.ZstdError:
        return None
    data: bytes = trained.as_bytes()
    return data


def _ratio(dictionary: PageDictionary, training: Training) -> float:
    """The ratio the dictionary reaches on (a part of) its own samples: what drift is measured
    against."""
    compressor = dictionary.compressor(training.level)
    some = training.samples[:: max(1, len(training.samples) // 200)]
    packed = sum(len(compressor.compress(page)) for page in some)
    return sum(map(len, some)) / max(1, packed)
