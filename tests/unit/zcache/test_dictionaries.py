"""Trained zstd dictionaries (`ramster.zcache.dictionaries`) in a real `ZCache`, with plain
objects: sampling, training (run here in line; the node runs it in a thread), the pages packed
with a dictionary, retraining while pages of the old one are stored, reference counts, and the
pool a dictionary belongs to."""

from __future__ import annotations

import itertools
import random

import pytest
import zstandard

from ramster.errors import DictionaryRetired, InvalidArgument
from ramster.page import Codec, PackedPage, UnknownDictionary, check_packed, unpack_page
from ramster.page_dictionary import DDICT_BYTES, PageDictionary, _header_size
from ramster.tmem.store import Created
from ramster.zcache import ZCache, ZcacheConfig
from ramster.zcache.dictionaries import (
    MAX_PERSISTENT,
    DictionaryShelf,
    Samples,
    Training,
    pays_off,
    train,
)
from ramster.zcache.store import SLOT_BYTES

ZSTD1 = Codec("zstd", 1)
POOL, OTHER = 7, 8
SAMPLES = 200
SAMPLE_BYTES = 4096 + 8
"""What a sample holds: its page, and where it ends in the samples' buffer."""
_versions = itertools.count(1)


def _vocabulary(kind: str) -> list[bytes]:
    rng = random.Random(kind)
    return [bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz_:{}", k=120)) for _ in range(100)]


VOCABULARY = {kind: _vocabulary(kind) for kind in ("user", "order", "other")}


def record_page(n: int, kind: str = "user") -> bytes:
    """A page of 35 lines (cut to 4096 bytes) drawn from the 100 of its kind: few repeat within
    a page, so zstd alone packs it poorly, but every line is in the samples a dictionary was
    trained on."""
    return b"".join(random.Random(n).choices(VOCABULARY[kind], k=35))[:4096]


def store() -> ZCache:
    zcache = ZCache(ZcacheConfig(memory=1 << 30))
    zcache.dictionaries.samples = SAMPLES
    zcache.dictionaries.size = 16384
    return zcache


def put(zcache: ZCache, page: bytes, pool: int = POOL, persistent: bool = False) -> int:
    version = next(_versions)
    created = zcache.create(page, persistent, version, version, codec=ZSTD1, pool_uid=pool)
    assert isinstance(created, Created)
    return created.slot


def trained(zcache: ZCache, pool: int = POOL) -> Training:
    """Pool `pool`'s training, run and installed (as the node does off its loop)."""
    training = zcache.dictionaries.due(pool, 1)
    assert training is not None
    zcache.dictionaries.install(training, train(training))
    return training


def test_a_pool_samples_its_pages_then_packs_new_ones_with_the_dictionary_trained_on_them() -> None:
    zcache = store()
    before = [put(zcache, record_page(n)) for n in range(SAMPLES - 1)]
    assert zcache.dictionaries.due(POOL, 1) is None  # one sample short
    before.append(put(zcache, record_page(SAMPLES - 1)))
    training = trained(zcache)
    assert (training.pool_uid, training.dict_id, len(training.samples)) == (POOL, 1, SAMPLES)
    assert zcache.dictionaries.due(POOL, 1) is None  # no longer sampling
    after = [put(zcache, record_page(n)) for n in range(1000, 1100)]
    plain = [zcache.read_packed(slot, 4096) for slot in before]
    packed = [zcache.read_packed(slot, 4096) for slot in after]
    assert {page.dictionary for page in plain} == {0}
    assert {page.dictionary for page in packed} == {1}
    assert [zcache.read(slot, 4096) for slot in after] == [
        record_page(n) for n in range(1000, 1100)
    ]
    mean = lambda pages: sum(len(p.payload) for p in pages) / len(pages)  # noqa: E731
    assert mean(packed) < 0.5 * mean(plain[:100])
    assert zcache.counters()["zstd_dicts_trained"] == 1


def test_a_dictionary_belongs_to_its_pool_alone() -> None:
    zcache = store()
    for n in range(SAMPLES):
        put(zcache, record_page(n))
    trained(zcache)
    other = zcache.read_packed(put(zcache, record_page(5000), pool=OTHER), 4096)
    assert other.dictionary == 0  # another pool's pages never use it
    shelf = zcache.dictionaries
    assert sorted(shelf.of_pool(POOL)) == [1]
    assert shelf.of_pool(OTHER) == {}
    mine = zcache.read_packed(put(zcache, record_page(5001)), 4096)
    # A frame of pool POOL put into pool OTHER names a dictionary OTHER does not have.
    with pytest.raises(InvalidArgument) as refused:
        check_packed(mine, "pages[0].data", shelf.of_pool(OTHER))
    assert refused.value.message == (
        "pages[0].data names zstd dictionary 1, which its reader does not know"
    )
    assert check_packed(mine, "pages[0].data", shelf.of_pool(POOL)) == mine


def test_persistent_pages_get_no_dictionary_where_the_node_records_none() -> None:
    zcache = store()
    for n in range(SAMPLES):
        put(zcache, record_page(n))
    trained(zcache)
    slot = put(zcache, record_page(9), persistent=True)
    assert zcache.read_packed(slot, 4096).dictionary == 0


def test_a_drifting_ratio_trains_a_new_dictionary_and_the_old_lives_while_its_pages_do() -> None:
    zcache = store()
    shelf = zcache.dictionaries
    shelf.drift = 5
    for n in range(SAMPLES):
        put(zcache, record_page(n))
    trained(zcache)
    old = [put(zcache, record_page(n)) for n in range(2000, 2050)]
    # The pool's pages change: the first dictionary fits them worse and worse.
    for n in range(3 * SAMPLES):
        put(zcache, bytes(random.Random(n).choices(b"0123456789abcdef", k=4096)))
        if shelf.wants_sample(POOL):
            break
    assert shelf.wants_sample(POOL), "the ratio never drifted"
    for n in range(SAMPLES):
        put(zcache, record_page(n, kind="order"))
    first = shelf.by_id[1]
    assert shelf.held_bytes == held_by(first, packing_level=1) + SAMPLES * SAMPLE_BYTES
    second = trained(zcache)
    assert second.dict_id == 2
    # The first packs no more: its compressor goes, and is no longer charged.
    assert shelf.held_bytes == held_by(first) + held_by(shelf.by_id[2])
    new = put(zcache, record_page(7000, kind="order"))
    assert zcache.read_packed(new, 4096).dictionary == 2
    assert shelf.held_bytes == held_by(first) + held_by(shelf.by_id[2], packing_level=1)
    # Pages of the first dictionary are still stored and read back exact.
    assert [zcache.read(slot, 4096) for slot in old] == [record_page(n) for n in range(2000, 2050)]
    assert sorted(shelf.by_id) == [1, 2]
    late = zcache.read_packed(old[0], 4096)  # as a client told to pack with 1 still sends
    for slot in range(new):  # every page but the newest
        if zcache.read_packed(slot, 4096).dictionary == 1:
            zcache.free(slot)
    assert sorted(shelf.by_id) == [2]  # the last page of dictionary 1 took it along
    assert shelf.held_bytes == held_by(shelf.by_id[2], packing_level=1)
    assert zcache.counters()["zstd_dicts_dropped"] == 1
    assert zcache.read(new, 4096) == record_page(7000, kind="order")
    # A page packed with it arrives late: not the caller's fault, it is to send the page raw.
    assert shelf.of_pool(POOL).dropped == {1}
    with pytest.raises(DictionaryRetired) as retired:
        check_packed(late, "pages[3].data", shelf.of_pool(POOL))
    assert retired.value.message == (
        "pages[3].data names zstd dictionary 1, which its pool dropped when a newer one took "
        "over: send the page raw, or packed as the put's answer advises"
    )
    with pytest.raises(InvalidArgument):  # another pool never had it
        check_packed(late, "pages[3].data", shelf.of_pool(OTHER))


def test_a_gone_pool_drops_its_samples_and_unused_dictionaries() -> None:
    zcache = store()
    slots = [put(zcache, record_page(n)) for n in range(SAMPLES)]
    trained(zcache)
    packed = zcache.read_packed(put(zcache, record_page(9000)), 4096)
    for slot in [*slots, slots[-1] + 1]:
        zcache.free(slot)
    zcache.forget_pool(POOL)
    assert zcache.dictionaries.by_id == {}
    with pytest.raises(UnknownDictionary) as lost:
        unpack_page(packed, zcache.dictionaries.by_id)
    assert lost.value.message == "zstd page names dictionary 1, which is not known here"


def test_a_page_naming_a_dictionary_it_was_not_made_with_never_decodes_wrong() -> None:
    zcache = store()
    for n in range(SAMPLES):
        put(zcache, record_page(n))
    trained(zcache)
    first = zcache.dictionaries.by_id[1]
    shelf = DictionaryShelf(samples=SAMPLES, size=16384)
    for n in range(SAMPLES):
        shelf.sample(POOL, record_page(n, kind="other"))
    training = shelf.due(POOL, 1)
    assert training is not None
    shelf.install(training, train(training))  # another dictionary, by the same id 1
    impostor = shelf.by_id[1]
    packed = zcache.read_packed(put(zcache, record_page(4242)), 4096)
    assert unpack_page(packed, {1: first}) == record_page(4242)
    with pytest.raises(InvalidArgument):
        unpack_page(packed, {1: impostor})
    corrupted = PackedPage(packed.payload, False, 4096, "zstd", 1)
    with pytest.raises(InvalidArgument):
        check_packed(corrupted, "data", {1: impostor})


def held_by(dictionary: PageDictionary, packing_level: int | None = None) -> int:
    """What `dictionary` holds, measured part by part: zstd's copies of it (whole, and its
    content alone), its DDict, a decompression context, and (`packing_level`) a compressor of
    that level with its content loaded, once it packed a page."""
    data = dictionary.data
    header = _header_size(data)
    assert header is not None
    content = zstandard.ZstdCompressionDict(data[header:], dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    held = len(data) + len(content) + DDICT_BYTES + zstandard.estimate_decompression_context_size()
    if packing_level is not None:
        compressor = zstandard.ZstdCompressor(
            level=packing_level, dict_data=content, write_checksum=True, write_dict_id=True
        )
        compressor.compress(record_page(0))
        held += compressor.memory_size()
    return held


def test_samples_and_dictionaries_count_against_the_budget_at_what_they_hold() -> None:
    zcache = store()
    shelf = zcache.dictionaries
    slots = [put(zcache, record_page(n)) for n in range(SAMPLES)]
    pages_only = zcache.used_bytes - SAMPLES * SAMPLE_BYTES
    assert shelf.held_bytes == SAMPLES * SAMPLE_BYTES
    trained(zcache)
    dictionary = shelf.by_id[1]
    assert shelf.held_bytes == dictionary.held_bytes == held_by(dictionary)
    assert zcache.used_bytes == pages_only + held_by(dictionary)
    # Its first page makes its compressor (level 1 beside 16 KiB: more than the rest of it).
    slots.append(put(zcache, record_page(SAMPLES)))
    pages_only = zcache.used_bytes - held_by(dictionary, packing_level=1)
    assert shelf.held_bytes == dictionary.held_bytes == held_by(dictionary, packing_level=1)
    assert held_by(dictionary, packing_level=1) - held_by(dictionary) > held_by(dictionary) / 2
    slots.append(put(zcache, record_page(SAMPLES + 1)))  # the same compressor packs the next
    assert shelf.held_bytes == held_by(dictionary, packing_level=1)
    counters = zcache.counters()
    assert counters["used_bytes"] == zcache.used_bytes
    assert counters["zstd_dict_bytes"] == held_by(dictionary, packing_level=1)
    for slot in slots:
        zcache.free(slot)
    zcache.forget_pool(POOL)
    # What stays is the slot table, which never shrinks.
    assert (shelf.held_bytes, zcache.used_bytes) == (0, (SAMPLES + 2) * SLOT_BYTES)


def test_a_sample_is_kept_only_while_it_fits_the_budget() -> None:
    zcache = ZCache(ZcacheConfig(memory=64 * 4096))
    for n in range(100):
        zcache.create(record_page(n), False, n + 1, n + 1, codec=ZSTD1, pool_uid=POOL)
    assert zcache.used_bytes <= 64 * 4096
    assert 0 < zcache.dictionaries.held_bytes < 64 * 4096


def test_a_dictionary_that_packs_no_smaller_is_not_used_and_the_pool_stays_plain() -> None:
    zcache = store()
    hex_page = lambda n: bytes(random.Random(n).choices(b"0123456789abcdef", k=4096))  # noqa: E731
    for n in range(SAMPLES):
        put(zcache, hex_page(n))
    training = zcache.dictionaries.due(POOL, 1)
    assert training is not None
    assert train(training) is None  # no gain on the samples it was not trained on
    zcache.dictionaries.install(training, None)
    assert zcache.read_packed(put(zcache, hex_page(9999)), 4096).dictionary == 0
    assert not zcache.dictionaries.wants_sample(POOL)
    counters = zcache.counters()
    assert (counters["zstd_dicts_trained"], counters["zstd_dicts_unhelpful"]) == (0, 1)
    assert zcache.dictionaries.held_bytes == 0


def recording_store() -> ZCache:
    """A store whose node records dictionaries (etcd): its persistent pools get them too."""
    zcache = store()
    zcache.dictionaries.keeps_persistent = True
    return zcache


def test_a_recorded_persistent_pool_keeps_every_dictionary_as_long_as_it_lives() -> None:
    zcache = recording_store()
    shelf = zcache.dictionaries
    shelf.drift = 5
    slots = [put(zcache, record_page(n), persistent=True) for n in range(SAMPLES)]
    assert shelf.is_persistent(POOL)
    trained(zcache)
    first = put(zcache, record_page(9000), persistent=True)
    assert zcache.read_packed(first, 4096).dictionary == 1
    slots += [put(zcache, record_page(n), persistent=True) for n in range(2000, 2050)]
    for n in range(3 * SAMPLES):  # other pages: the ratio drifts
        page = bytes(random.Random(n).choices(b"0123456789abcdef", k=4096))
        slots.append(put(zcache, page, persistent=True))
        if shelf.wants_sample(POOL):
            break
    assert shelf.wants_sample(POOL), "the ratio never drifted"
    for n in range(SAMPLES):
        slots.append(put(zcache, record_page(n, kind="order"), persistent=True))
    assert trained(zcache).dict_id == 2
    # Its pages leave the store (shipped to a peer, say): both dictionaries stay.
    for slot in [*slots, first]:
        zcache.free(slot)
    assert sorted(shelf.of_pool(POOL)) == [1, 2]
    assert shelf.retired == []
    zcache.forget_pool(POOL)  # destroyed: they go, to be erased from the record
    assert shelf.by_id == {}
    assert shelf.retired == [1, 2]
    assert zcache.counters()["zstd_dicts_dropped"] == 2


def test_a_persistent_pool_keeps_at_most_max_persistent_dictionaries() -> None:
    shelf = DictionaryShelf(samples=2, drift=5)
    shelf.keeps_persistent = True
    for n in range(MAX_PERSISTENT):
        shelf.restore(POOL, train_dictionary(n + 1))
    current = shelf.current(POOL)
    assert current is not None and current.dict_id == MAX_PERSISTENT
    # Its pages pack worse and worse: a pool below the limit would sample again; this one not.
    for ratio_payload in (b"x" * 100, b"x" * 4000):
        for _ in range(2):
            shelf.packed(POOL, PackedPage(ratio_payload, False, 4096, "zstd", MAX_PERSISTENT))
    assert not shelf.wants_sample(POOL)


def train_dictionary(dict_id: int) -> bytes:
    samples = [record_page(n, kind="user") for n in range(SAMPLES)]
    data = train(Training(POOL, dict_id, Samples(samples), 16384, 1))
    assert data is not None
    return data


def test_dictionaries_restored_after_a_restart_decode_the_pages_and_ids_continue() -> None:
    before = recording_store()
    for n in range(SAMPLES):
        put(before, record_page(n), persistent=True)
    trained(before)
    packed = before.read_packed(put(before, record_page(9000), persistent=True), 4096)
    data = before.dictionaries.by_id[1].data
    after = recording_store()  # the node restarted: its record gives the dictionary back
    after.dictionaries.continue_ids(5)
    after.dictionaries.restore(POOL, data)
    restored = after.dictionaries.by_id[1]
    assert after.dictionaries.held_bytes == held_by(restored)
    assert unpack_page(packed, after.dictionaries.of_pool(POOL)) == record_page(9000)
    assert after.dictionaries.is_persistent(POOL)
    # The pool's new pages are packed with it; the next dictionary takes an id never used.
    again = after.read_packed(put(after, record_page(9001), persistent=True), 4096)
    assert again.dictionary == 1
    assert after.dictionaries.held_bytes == held_by(restored, packing_level=1)
    for n in range(SAMPLES):
        after.dictionaries.sample(OTHER, record_page(n), persistent=True)
    training = after.dictionaries.due(OTHER, 1)
    assert training is not None and training.dict_id == 5


def test_a_dictionary_that_could_not_be_recorded_leaves_its_pool_sampling_again() -> None:
    zcache = recording_store()
    for n in range(SAMPLES):
        put(zcache, record_page(n), persistent=True)
    training = zcache.dictionaries.due(POOL, 1)
    assert training is not None and zcache.dictionaries.held_bytes == SAMPLES * SAMPLE_BYTES
    zcache.dictionaries.abandon(training)
    assert zcache.dictionaries.held_bytes == 0
    assert zcache.dictionaries.wants_sample(POOL)
    slot = put(zcache, record_page(1), persistent=True)
    assert zcache.read_packed(slot, 4096).dictionary == 0


def test_samples_leave_half_the_budget_to_the_pages_persistent_ones_too() -> None:
    zcache = ZCache(ZcacheConfig(memory=64 * 4096))
    zcache.dictionaries.keeps_persistent = True
    stored = [
        zcache.create(record_page(n), True, n + 1, n + 1, codec=ZSTD1, pool_uid=POOL)
        for n in range(50)
    ]
    # Half the budget is 32 pages; with where each ends, 31 samples fit in it.
    assert zcache.dictionaries.held_bytes == 31 * SAMPLE_BYTES
    assert [type(outcome) for outcome in stored] == [Created] * 50


def test_same_filled_pages_are_not_sampled() -> None:
    shelf = DictionaryShelf(samples=2)
    for page in (bytes(4096), b"\x07" * 4096, record_page(1), b"\xff" * 4096, record_page(2)):
        shelf.sample(POOL, page)
    assert shelf.wants_sample(POOL) is False
    assert shelf.held_bytes == 2 * SAMPLE_BYTES
    training = shelf.due(POOL, 1)
    assert training is not None
    assert training.samples.pages() == [record_page(1), record_page(2)]


@pytest.mark.parametrize(
    ("size", "pages", "saved", "used"),
    [
        # 2,000 pages must save more than the 64 KiB of the dictionary: 400 held-out pages,
        # more than 65,536 / 5 = 13,107.2 bytes.
        (65536, 2000, 13108, True),
        (65536, 2000, 13107, False),
        # The same saving pays for a dictionary half as large twice over.
        (32768, 2000, 6554, True),
        (32768, 2000, 6553, False),
        # A pool sampled 100,000 pages at a time: 0.1 % of 400 pages of 800 bytes pays ...
        (65536, 100_000, 320, True),
        # ... and no saving, or a loss, never does.
        (65536, 100_000, 0, False),
        (4096, 2000, -400, False),
    ],
)
def test_a_dictionary_is_used_only_if_it_saves_more_than_it_takes(
    size: int, pages: int, saved: int, used: bool
) -> None:
    alone = 400 * 800
    assert pays_off(size, pages, 400, alone, alone - saved) is used


def test_a_dictionary_that_packs_smaller_but_saves_less_than_its_size_is_not_used() -> None:
    # One page in 8 is a record page, the rest hex: a dictionary packs the held-out samples
    # 10 % smaller than zstd alone. At 64 KiB it saves 40 % less than it takes over the 200
    # pages; at 16 KiB it saves 2.5x what it takes.
    hex_page = lambda n: bytes(random.Random(n).choices(b"0123456789abcdef", k=4096))  # noqa: E731
    pages = [record_page(n) if n % 8 == 1 else hex_page(n) for n in range(SAMPLES)]
    assert train(Training(POOL, 1, Samples(pages), 65536, 1)) is None
    small = train(Training(POOL, 1, Samples(pages), 16384, 1))
    assert small is not None and len(small) == 16384


def test_training_uses_no_compressor_the_loop_packs_pages_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A zstd compressor is not thread-safe: training runs in a thread while the node's loop
    # packs pages with the compressors of ramster.page (sharing one crashed the node).
    def shared(level: int) -> None:
        raise AssertionError(f"training used the loop's zstd compressor of level {level}")

    monkeypatch.setattr("ramster.page._zstd_compressor", shared)
    pages = [record_page(n) for n in range(SAMPLES)]
    assert train(Training(POOL, 1, Samples(pages), 16384, 1)) is not None


def test_a_client_is_told_raw_while_the_pool_samples_and_trains_then_its_dictionary() -> None:
    zcache = store()
    shelf = zcache.dictionaries
    assert shelf.packs_with(POOL) is None  # no page yet: sampling begins with the first
    for n in range(SAMPLES):
        put(zcache, record_page(n))
    assert shelf.packs_with(POOL) is None
    training = shelf.due(POOL, 1)
    assert training is not None
    assert shelf.packs_with(POOL) is None  # training: the next pages get its dictionary
    shelf.install(training, train(training))
    assert shelf.packs_with(POOL) == training.dict_id
    hex_page = lambda n: bytes(random.Random(n).choices(b"0123456789abcdef", k=4096))  # noqa: E731
    for n in range(SAMPLES):
        put(zcache, hex_page(n), pool=OTHER)
    declined = shelf.due(OTHER, 1)
    assert declined is not None
    shelf.install(declined, None)
    assert shelf.packs_with(OTHER) == 0  # plain zstd: packed, with no dictionary
    assert (shelf.trains(persistent=False), shelf.trains(persistent=True)) == (True, False)
