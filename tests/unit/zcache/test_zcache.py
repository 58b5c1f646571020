"""ZCache on its own: same-filled pages, the admission policy of docs/design.md §4, counters,
`repr`, config validation, the put order, and the size units the config is written in.

Pages are built to an exact lz4 size (`page_with_zsize`), so every threshold is tested at its
value and one byte above. What every store must do (round trips, accounting, eviction order) is
in tests/contract/test_store_contract.py.
"""

from __future__ import annotations

import functools
import itertools
import random
import tracemalloc

import lz4.block
import pytest

from ramster.errors import InvalidArgument
from ramster.page import Codec, compress_page, decompress_page, pack_page
from ramster.tmem.store import Created, Rejected, RejectReason
from ramster.units import format_size, parse_size
from ramster.zcache import PlainStore, ZCache, ZcacheConfig
from ramster.zcache.lru import PutOrder
from ramster.zcache.plain import PLAIN_PAGE_BYTES
from ramster.zcache.store import (
    COMPACT_SLACK,
    PAGE_BYTES,
    PUT_ORDER_BYTES,
    SLOT_BYTES,
    payload_heap_bytes,
)

MIB = 1 << 20


def lz4_size(data: bytes) -> int:
    return len(lz4.block.compress(data, store_size=False))


@functools.cache
def page_with_zsize(zsize: int, page_size: int = 4096) -> bytes:
    """A page that lz4 packs to exactly `zsize` bytes: random bytes, then zeros.

    The packed size grows with the random head by about one byte a byte, so bisect on the head
    length, then look around it; a few sizes are skipped by lz4's length encoding for one random
    head, so try another.
    """
    for seed in range(8):
        head = random.Random(seed).randbytes(page_size)

        def build(n: int, head: bytes = head) -> bytes:
            return head[:n] + bytes(page_size - n)

        lo, hi = 0, page_size
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (mid + 1, hi) if lz4_size(build(mid)) < zsize else (lo, mid)
        for n in range(max(0, lo - 3), min(page_size, lo + 3) + 1):
            if lz4_size(build(n)) == zsize:
                return build(n)
    raise AssertionError(f"no page of {page_size} bytes found that packs to {zsize} bytes")


def zcache(memory: int = MIB) -> ZCache:
    return ZCache(ZcacheConfig(memory=memory))


_versions = itertools.count(1)


def put(store: ZCache, data: bytes, persistent: bool) -> Created | Rejected:
    """Create with a fresh version, which is also the backref."""
    version = next(_versions)
    return store.create(data, persistent, version, version)


def pick(store: ZCache, *names: str) -> dict[str, int]:
    counters = store.counters()
    return {name: counters[name] for name in names}


ADMISSION = ("compress_poor", "mean_compress_poor", "failed_eph_puts", "failed_pers_puts")


# -- same-filled pages -------------------------------------------------------------------------


@pytest.mark.parametrize("page_size", [512, 4096, 65536])
@pytest.mark.parametrize("fill", [0x00, 0xAB], ids=["zero", "0xab"])
def test_same_filled_page_is_stored_as_one_byte(page_size: int, fill: int) -> None:
    store = zcache()
    data = bytes([fill]) * page_size

    created = put(store, data, persistent=False)

    assert isinstance(created, Created)
    assert store.read(created.slot, page_size) == data
    assert pick(store, "same_filled_pages", "zero_filled_pages", "eph_zbytes", "eph_zpages") == {
        "same_filled_pages": 1,
        "zero_filled_pages": 1 if fill == 0 else 0,
        "eph_zbytes": 1,
        "eph_zpages": 1,
    }
    assert store.used_bytes == PAGE_BYTES + SLOT_BYTES  # no payload: one-byte bytes are shared
    store.free(created.slot)
    assert pick(store, "eph_zbytes", "eph_zpages") == {"eph_zbytes": 0, "eph_zpages": 0}
    assert store.used_bytes == SLOT_BYTES


def test_same_filled_persistent_page_counts_one_byte() -> None:
    store = zcache()
    created = put(store, bytes(4096), persistent=True)

    assert isinstance(created, Created)
    assert pick(store, "pers_zbytes", "pers_zpages", "zero_filled_pages") == {
        "pers_zbytes": 1,
        "pers_zpages": 1,
        "zero_filled_pages": 1,
    }
    store.free(created.slot)
    assert pick(store, "pers_zbytes", "pers_zpages") == {"pers_zbytes": 0, "pers_zpages": 0}


@pytest.mark.parametrize("page_size", [512, 4096, 65536])
def test_a_page_with_one_different_byte_is_not_same_filled(page_size: int) -> None:
    store = zcache()
    data = b"\xab" * (page_size - 1) + b"\xac"

    created = put(store, data, persistent=False)

    assert isinstance(created, Created)
    assert store.read(created.slot, page_size) == data
    assert pick(store, "same_filled_pages", "eph_zbytes") == {
        "same_filled_pages": 0,
        "eph_zbytes": lz4_size(data),
    }


@pytest.mark.parametrize("page_size", [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536])
def test_every_fill_byte_of_every_page_size_packs_to_that_byte_and_no_near_miss_does(
    page_size: int,
) -> None:
    for fill in range(256):
        page = bytes([fill]) * page_size
        assert compress_page(page) == (bytes([fill]), True)
        for at in (0, page_size // 2, page_size - 1):  # one byte off: an lz4 block, lossless
            near = page[:at] + bytes([fill ^ 1]) + page[at + 1 :]
            payload, same_filled = compress_page(near)
            assert not same_filled
            assert decompress_page(payload, False, page_size) == near


def test_a_payload_of_the_wrong_size_is_refused_on_decompression() -> None:
    payload, same_filled = compress_page(page_with_zsize(1000))

    assert not same_filled
    with pytest.raises(InvalidArgument) as caught:
        decompress_page(payload, same_filled, 8192)
    assert caught.value.message == "compressed page decodes to 4096 bytes, not 8192"


# -- admission (docs/design.md §4, reference §A4.5)
# ----------------------------------------------------


def test_ephemeral_pages_above_4000_bytes_are_refused() -> None:
    store = zcache()

    assert isinstance(put(store, page_with_zsize(4000), persistent=False), Created)
    assert put(store, page_with_zsize(4001), persistent=False) == Rejected(
        RejectReason.COMPRESS_POOR
    )
    assert put(store, random.Random(1).randbytes(4096), persistent=False) == Rejected(
        RejectReason.COMPRESS_POOR
    )

    assert pick(store, *ADMISSION, "eph_zpages", "eph_zbytes") == {
        "compress_poor": 2,
        "mean_compress_poor": 0,
        "failed_eph_puts": 2,
        "failed_pers_puts": 0,
        "eph_zpages": 1,
        "eph_zbytes": 4000,
    }


def test_persistent_pages_above_3584_bytes_are_refused() -> None:
    store = zcache()

    assert isinstance(put(store, page_with_zsize(3584), persistent=True), Created)
    assert put(store, page_with_zsize(3585), persistent=True) == Rejected(
        RejectReason.COMPRESS_POOR
    )
    assert isinstance(put(store, page_with_zsize(3585), persistent=False), Created)

    assert pick(store, *ADMISSION, "pers_zpages", "pers_zbytes", "eph_zbytes") == {
        "compress_poor": 1,
        "mean_compress_poor": 0,
        "failed_eph_puts": 0,
        "failed_pers_puts": 1,
        "pers_zpages": 1,
        "pers_zbytes": 3584,
        "eph_zbytes": 3585,
    }


def test_poor_persistent_pages_are_admitted_only_while_the_mean_is_good() -> None:
    store = zcache()
    refused = Rejected(RejectReason.MEAN_COMPRESS_POOR)

    def admit(zsize: int, persistent: bool = True) -> int:
        created = put(store, page_with_zsize(zsize), persistent)
        assert isinstance(created, Created), f"{zsize} bytes refused: {created}"
        return created.slot

    first = admit(3000)  # no persistent page yet: no mean to spoil
    assert put(store, page_with_zsize(2561), persistent=True) == refused  # mean 3000
    admit(2560)  # not poor: the mean does not matter
    admit(1000)  # mean (3000 + 2560 + 1000) / 3 = 2187: good
    poor = [admit(3000), admit(3000)]  # poor, admitted: the mean is 2390, then 2512
    admit(3000)  # and once more: the mean becomes 2593, bad
    assert put(store, page_with_zsize(2561), persistent=True) == refused
    admit(3000, persistent=False)  # the mean rule is for persistent pages only

    # The mean is that of the pages stored now: freeing poor pages makes it good again.
    for slot in (first, *poor):
        store.free(slot)
    admit(2561)  # mean (2560 + 1000 + 3000) / 3 = 2187

    assert pick(store, *ADMISSION, "pers_zpages", "pers_zbytes") == {
        "compress_poor": 0,
        "mean_compress_poor": 2,
        "failed_eph_puts": 0,
        "failed_pers_puts": 2,
        "pers_zpages": 4,
        "pers_zbytes": 2560 + 1000 + 3000 + 2561,
    }


def test_a_mean_exactly_at_2560_bytes_is_still_good() -> None:
    store = zcache()

    assert isinstance(put(store, page_with_zsize(2560), persistent=True), Created)
    assert isinstance(put(store, page_with_zsize(3584), persistent=True), Created)  # mean 2560
    assert put(store, page_with_zsize(2561), persistent=True) == Rejected(
        RejectReason.MEAN_COMPRESS_POOR
    )  # mean 3072
    assert pick(store, "mean_compress_poor", "pers_zpages") == {
        "mean_compress_poor": 1,
        "pers_zpages": 2,
    }


@pytest.mark.parametrize("page_size", [512, 8192])
def test_admission_limits_scale_with_the_page_size(page_size: int) -> None:
    eph_limit, pers_limit, mean_limit = (n * page_size // 4096 for n in (4000, 3584, 2560))
    store = zcache()

    assert isinstance(put(store, page_with_zsize(eph_limit, page_size), False), Created)
    assert put(store, page_with_zsize(eph_limit + 1, page_size), False) == Rejected(
        RejectReason.COMPRESS_POOR
    )
    assert isinstance(put(store, page_with_zsize(pers_limit, page_size), True), Created)
    assert put(store, page_with_zsize(pers_limit + 1, page_size), True) == Rejected(
        RejectReason.COMPRESS_POOR
    )
    assert put(store, page_with_zsize(mean_limit + 1, page_size), True) == Rejected(
        RejectReason.MEAN_COMPRESS_POOR
    )
    assert isinstance(put(store, page_with_zsize(mean_limit, page_size), True), Created)

    assert pick(store, *ADMISSION) == {
        "compress_poor": 2,
        "mean_compress_poor": 1,
        "failed_eph_puts": 1,
        "failed_pers_puts": 2,
    }


# -- pressure counters, repr -------------------------------------------------------------------


def test_puts_under_pressure_count_who_ate_whom() -> None:
    store = zcache(memory=64 * 1024)
    data = page_with_zsize(1000)
    room = 2 * (payload_heap_bytes(1000) + PAGE_BYTES + SLOT_BYTES)
    store.charge(64 * 1024 - room)

    outcomes = [
        store.create(data, persistent, v, v)
        for v, persistent in enumerate([False, False, False, True, True, False, True], 1)
    ]

    assert [outcome.evicted for outcome in outcomes] == [(), (), (1,), (2,), (3,), (), ()]
    assert outcomes[5:] == [Rejected(RejectReason.NO_SPACE)] * 2

    assert pick(
        store,
        "eph_ate_tail",
        "eph_ate_tail_failed",
        "pers_ate_eph",
        "pers_ate_eph_failed",
        "evicted_eph_zpages",
        "failed_eph_puts",
        "failed_pers_puts",
        "eph_zpages",
        "pers_zpages",
    ) == {
        "eph_ate_tail": 1,
        "eph_ate_tail_failed": 1,
        "pers_ate_eph": 2,
        "pers_ate_eph_failed": 1,
        "evicted_eph_zpages": 3,
        "failed_eph_puts": 1,
        "failed_pers_puts": 1,
        "eph_zpages": 0,
        "pers_zpages": 2,
    }
    assert store.used_bytes == 64 * 1024


def test_repr_names_pages_sizes_budget_and_refusals() -> None:
    store = zcache()
    assert repr(store) == "<ZCache pages=0 raw=0B stored=0B used=0B/1.0MiB rejected=0>"

    for _ in range(1000):
        put(store, bytes(4096), persistent=False)
    for _ in range(24):
        put(store, b"\xab" * 4096, persistent=True)
    put(store, random.Random(1).randbytes(4096), persistent=False)

    assert store.used_bytes == 1024 * (PAGE_BYTES + SLOT_BYTES) == 57 * 1024
    assert repr(store) == (
        "<ZCache pages=1024 raw=4.0MiB stored=1.0KiB used=57.0KiB/1.0MiB rejected=1>"
    )


def test_put_and_free_without_pressure_does_not_grow_memory() -> None:
    store = zcache()
    data = page_with_zsize(1000)

    def churn(puts: int) -> None:
        for i in range(puts):
            created = put(store, data, persistent=i % 2 == 0)
            assert isinstance(created, Created)
            store.free(created.slot)

    churn(4096)  # reach the steady state first
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        churn(12000)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()

    # 12 bytes of put order a put would be 144000 bytes (216000 counting an ephemeral page's
    # two orders) if freed pages' entries were kept; compaction bounds each of the three orders
    # to COMPACT_SLACK stale entries.
    assert grown < 3 * COMPACT_SLACK * PUT_ORDER_BYTES + 8 * 1024
    assert store.put_order(False) == store.put_order(True) == []


# -- PlainStore's own surface ------------------------------------------------------------------


def test_plain_store_repr_and_validation() -> None:
    store = PlainStore(memory=MIB)
    store.create(bytes(4096), False, 1, 1)
    store.create(b"\x01" * 4096, True, 2, 2)

    assert 2 * (4096 + PLAIN_PAGE_BYTES) == 8512
    assert repr(store) == "<PlainStore pages=2 used=8.3KiB/1.0MiB>"
    assert store.put_order(False) == [0]
    assert store.put_order(True) == [1]
    with pytest.raises(InvalidArgument) as caught:
        PlainStore(memory=0)
    assert caught.value.message == "memory 0 is invalid: expected bytes >= 1"


# -- config ------------------------------------------------------------------------------------


def test_config_defaults_are_the_kernel_values() -> None:
    config = ZcacheConfig(memory=MIB)
    assert (config.max_zsize_eph, config.max_zsize_pers, config.max_mean_zsize) == (
        4000,
        3584,
        2560,
    )
    assert (config.high_watermark, config.low_watermark) == (0.9, 0.8)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"memory": 65535}, "memory 65535 is invalid: expected bytes >= 65536"),
        ({"memory": "64MiB"}, "memory '64MiB' is invalid: expected bytes >= 65536"),
        ({"max_zsize_eph": 0}, "max_zsize_eph 0 is invalid: expected bytes in 1..4096"),
        ({"max_zsize_pers": 4097}, "max_zsize_pers 4097 is invalid: expected bytes in 1..4096"),
        ({"max_mean_zsize": 2560.0}, "max_mean_zsize 2560.0 is invalid: expected bytes in 1..4096"),
        (
            {"low_watermark": 0.9, "high_watermark": 0.8},
            "watermarks low 0.9 and high 0.8 are invalid: expected 0 < low < high <= 1",
        ),
        (
            {"high_watermark": 1.5},
            "watermarks low 0.8 and high 1.5 are invalid: expected 0 < low < high <= 1",
        ),
        (
            {"low_watermark": 0},
            "watermarks low 0 and high 0.9 are invalid: expected 0 < low < high <= 1",
        ),
    ],
)
def test_config_validation_names_field_value_and_expectation(
    changes: dict[str, object], message: str
) -> None:
    fields: dict[str, object] = {"memory": MIB, **changes}
    with pytest.raises(InvalidArgument) as caught:
        ZcacheConfig(**fields)  # type: ignore[arg-type]
    assert caught.value.message == message


# -- put order ---------------------------------------------------------------------------------


def test_put_order_skips_entries_whose_page_is_gone() -> None:
    order = PutOrder()
    for slot, version in [(0, 1), (1, 2), (2, 3), (0, 4)]:
        order.push(slot, version)
    live = {(1, 2), (2, 3), (0, 4)}  # slot 0 was freed, then reused by version 4

    def holds(slot: int, version: int) -> bool:
        return (slot, version) in live

    assert order.live(holds) == [1, 2, 0]
    assert repr(order) == "<PutOrder entries=4>"
    assert order.pop_oldest(holds) == 1
    assert len(order) == 2
    live.discard((2, 3))
    assert order.pop_oldest(holds) == 0
    assert len(order) == 0
    assert order.pop_oldest(holds) == -1


def test_put_order_drops_its_consumed_head_once_it_outgrows_the_rest() -> None:
    order = PutOrder()
    for slot in range(2000):
        order.push(slot, slot + 1)

    def holds(slot: int, version: int) -> bool:
        return True

    popped = [order.pop_oldest(holds) for _ in range(1024)]
    assert popped == list(range(1024))
    # White-box: the arrays are compacted only past 1024 consumed entries.
    assert (order._head, len(order._slots)) == (1024, 2000)
    assert order.pop_oldest(holds) == 1024
    assert (order._head, len(order._slots)) == (0, 975)
    assert len(order) == 975
    assert order.pop_oldest(holds) == 1025
    assert order.live(holds) == list(range(1026, 2000))


def test_put_order_compact_keeps_live_entries_in_order() -> None:
    order = PutOrder()
    for slot in range(10):
        order.push(slot, slot + 1)
    order.pop_oldest(lambda slot, version: True)

    order.compact(lambda slot, version: slot % 3 == 0)

    assert len(order) == 3
    assert order.pop_oldest(lambda slot, version: True) == 3
    assert order.live(lambda slot, version: True) == [6, 9]


# -- units -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [
        ("4096", 4096),
        ("4096B", 4096),
        ("64MiB", 64 * 2**20),
        ("1GiB", 2**30),
        ("1gib", 2**30),
        (" 10 MB ", 10_000_000),
        ("1.5KiB", 1536),
        ("2.01KB", 2010),
        ("4.35MB", 4_350_000),
        ("2TiB", 2 * 2**40),
        ("768Mi", 768 * 2**20),  # Kubernetes quantities, as in deploy/k8s
        ("1Gi", 2**30),
        ("4Ki", 4096),
        ("500M", 500_000_000),
    ],
)
def test_parse_size(text: str, nbytes: int) -> None:
    assert parse_size(text) == nbytes


@pytest.mark.parametrize(
    "text", ["", "12x", "-1", "1.2.3MiB", "MiB", "1 PiB", "1.5", "0.1Ki", "768m i", "1e3"]
)
def test_parse_size_refuses_what_is_not_a_size(text: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_size(text, field="memory")
    assert caught.value.message == (
        f"memory {text!r} is invalid: expected a whole number of bytes such as 4096, 64MiB or 768Mi"
    )


@pytest.mark.parametrize(
    ("nbytes", "text"),
    [
        (0, "0B"),
        (1023, "1023B"),
        (1024, "1.0KiB"),
        (1536, "1.5KiB"),
        (64 * 2**20, "64.0MiB"),
        (3 * 2**30 // 2, "1.5GiB"),
        (2**40, "1024.0GiB"),
        (-2048, "-2.0KiB"),
    ],
)
def test_format_size(nbytes: int, text: str) -> None:
    assert format_size(nbytes) == text


# -- codecs --------------------------------------------------------------------------------------

ZSTD3 = Codec("zstd", 3)


def test_a_zstd_pools_pages_are_kept_as_zstd_frames_and_counted_by_codec() -> None:
    store = zcache()
    text = [(b"zstd page %d " % n) * 300 + bytes(496) for n in range(3)]
    pages = [page[:4096] for page in text]
    slots = [store.create(page, True, n + 1, n + 1, codec=ZSTD3) for n, page in enumerate(pages)]
    lz4_slot = store.create(pages[0], False, 9, 9)
    same = store.create(bytes(4096), True, 10, 10, codec=ZSTD3)
    assert all(isinstance(s, Created) for s in (*slots, lz4_slot, same))
    frames = [pack_page(page, ZSTD3) for page in pages]
    for slot, page, frame in zip(slots, pages, frames, strict=True):
        assert isinstance(slot, Created)
        assert store.read(slot.slot, 4096) == page
        assert store.read_packed(slot.slot, 4096) == frame
    assert isinstance(same, Created) and store.read_packed(same.slot, 4096).payload == b"\0"
    codec_counters = ("lz4_zpages", "lz4_zbytes", "lz4_bytes", "zstd_zpages", "zstd_zbytes")
    assert pick(store, *codec_counters, "zstd_bytes", "same_filled_pages") == {
        "lz4_zpages": 1,
        "lz4_zbytes": len(pack_page(pages[0]).payload),
        "lz4_bytes": 4096,
        "zstd_zpages": 3,
        "zstd_zbytes": sum(len(f.payload) for f in frames),
        "zstd_bytes": 3 * 4096,
        "same_filled_pages": 1,
    }
    assert pick(store, "pers_zbytes")["pers_zbytes"] == sum(len(f.payload) for f in frames) + 1
    for slot in (*slots, lz4_slot, same):
        assert isinstance(slot, Created)
        store.free(slot.slot)
    assert set(pick(store, *codec_counters, "zstd_bytes").values()) == {0}


def test_admission_judges_the_compressed_size_whatever_the_codec() -> None:
    store = zcache()
    noise = random.Random(5).randbytes(4096)
    assert put_codec(store, noise, ZSTD3) == Rejected(RejectReason.COMPRESS_POOR)
    packed = pack_page(noise, ZSTD3)
    assert len(packed.payload) > 4000
    assert store.create(packed, False, 1, 1) == Rejected(RejectReason.COMPRESS_POOR)
    assert pick(store, "compress_poor", "failed_eph_puts", "zstd_zpages") == {
        "compress_poor": 2,
        "failed_eph_puts": 2,
        "zstd_zpages": 0,
    }


def put_codec(store: ZCache, data: bytes, codec: Codec) -> Created | Rejected:
    version = next(_versions)
    return store.create(data, False, version, version, codec=codec)
