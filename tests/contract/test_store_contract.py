"""The `PageStore` contract: one behavioural suite run against every page store (style habit 11).

What the tmem core relies on from the memory that holds its pages: exact round trips, versions,
accounting that `free` gives back, `charge` counting against the budget, `reserve` charging
only what fits, and the eviction rule of
docs/design.md §4 (ephemeral pages only, oldest put first; a put that cannot fit even with every
ephemeral page gone is refused at once and evicts nothing). Every cost is derived from the store's
own constants, so every count and byte is exact. What only one store does (compression, admission,
same-filled pages) is in tests/unit/zcache/test_zcache.py; the tmem rules on top are in
tests/unit/tmem/test_tmem.py.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import lz4.block
import pytest

from ramster.tmem.store import Created, PageStore, Rejected, RejectReason
from ramster.zcache import PlainStore, ZCache, ZcacheConfig
from ramster.zcache.plain import PLAIN_PAGE_BYTES
from ramster.zcache.store import PAGE_BYTES, SLOT_BYTES, payload_heap_bytes

PAGE_SIZE = 4096
MEMORY = 1 << 20
RANDOM_BYTES = 1010
"""Random bytes at the head of a test page: lz4 packs such a page to ~1041 bytes, the same heap
size class for every seed, so a store spends the same on each (checked by `same_cost`)."""


def page(seed: int) -> bytes:
    """A page both stores accept: random bytes, then zeros."""
    return random.Random(seed).randbytes(RANDOM_BYTES) + bytes(PAGE_SIZE - RANDOM_BYTES)


def zcache_page_cost(data: bytes) -> int:
    zsize = len(lz4.block.compress(data, store_size=False))
    return payload_heap_bytes(zsize) + PAGE_BYTES


@dataclass(frozen=True)
class StoreCase:
    """How to build one store, and what its pages cost it.

    page_cost: bytes a live page holds against the budget, all given back by `free`.
    slot_cost: bytes a store spends once per slot it adds, kept after `free` (its slot table).
    """

    make: Callable[[int], PageStore]
    page_cost: Callable[[bytes], int]
    slot_cost: int

    def same_cost(self, *pages: bytes) -> int:
        """The cost shared by `pages`; the exact counts of a test rely on it being one value."""
        costs = {self.page_cost(data) for data in pages}
        assert len(costs) == 1, f"test pages cost {sorted(costs)}, not one value"
        return costs.pop()


CASES = {
    "zcache": StoreCase(
        make=lambda memory: ZCache(ZcacheConfig(memory=memory)),
        page_cost=zcache_page_cost,
        slot_cost=SLOT_BYTES,
    ),
    "plain": StoreCase(
        make=lambda memory: PlainStore(memory=memory),
        page_cost=lambda data: len(data) + PLAIN_PAGE_BYTES,
        slot_cost=0,
    ),
}


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> StoreCase:
    return CASES[request.param]


@pytest.fixture
def store(case: StoreCase) -> PageStore:
    return case.make(MEMORY)


def used(store: PageStore) -> int:
    return store.counters()["used_bytes"]


def leave_room(store: PageStore, room: int) -> None:
    """Charge the budget so that exactly `room` bytes are left."""
    store.charge(MEMORY - used(store) - room)
    assert MEMORY - used(store) == room


def create(store: PageStore, data: bytes, persistent: bool, version: int) -> Created:
    """Store a page that must be accepted; its backref is its version."""
    outcome = store.create(data, persistent, version, version)
    assert isinstance(outcome, Created), outcome
    return outcome


def counts(store: PageStore) -> tuple[int, int, int]:
    counters = store.counters()
    return counters["eph_zpages"], counters["pers_zpages"], counters["evicted_eph_zpages"]


# -- round trip, versions, slots ---------------------------------------------------------------


@pytest.mark.parametrize("persistent", [False, True], ids=["ephemeral", "persistent"])
def test_read_returns_the_exact_bytes_created(store: PageStore, persistent: bool) -> None:
    pages = [page(1), page(2), bytes(PAGE_SIZE), b"\x5a" * PAGE_SIZE, bytes(range(256)) * 16]
    slots = [create(store, data, persistent, v).slot for v, data in enumerate(pages, 1)]

    assert len(set(slots)) == len(pages)
    for slot, data in zip(slots, pages, strict=True):
        assert store.read(slot, PAGE_SIZE) == data
        assert store.read(slot, PAGE_SIZE) == data  # a read does not consume the page
    assert counts(store) == ((0, 5, 0) if persistent else (5, 0, 0))


def test_version_is_the_one_create_got(store: PageStore) -> None:
    first = create(store, page(1), False, 7)
    second = create(store, page(2), True, 2**40)

    assert store.version(first.slot) == 7
    assert store.version(second.slot) == 2**40

    store.free(first.slot)
    third = create(store, page(3), False, 9)
    assert store.version(third.slot) == 9
    assert store.version(second.slot) == 2**40


# -- accounting --------------------------------------------------------------------------------


@pytest.mark.parametrize("persistent", [False, True], ids=["ephemeral", "persistent"])
def test_free_gives_back_every_byte_of_the_page(
    case: StoreCase, store: PageStore, persistent: bool
) -> None:
    data = page(1)
    cost = case.page_cost(data)
    before = used(store)

    slot = create(store, data, persistent, 1).slot
    assert used(store) == before + cost + case.slot_cost
    store.free(slot)
    assert used(store) == before + case.slot_cost
    assert counts(store) == (0, 0, 0)

    slot = create(store, data, persistent, 2).slot  # into the freed slot: no new slot to pay
    assert used(store) == before + case.slot_cost + cost
    store.free(slot)
    assert used(store) == before + case.slot_cost


@pytest.mark.parametrize("persistent", [False, True], ids=["ephemeral", "persistent"])
def test_a_full_store_takes_a_page_again_once_one_is_freed(
    case: StoreCase, store: PageStore, persistent: bool
) -> None:
    a, b, c = page(1), page(2), page(3)
    leave_room(store, 2 * (case.same_cost(a, b, c) + case.slot_cost))
    first = create(store, a, persistent, 1)
    create(store, b, persistent, 2)
    assert used(store) == MEMORY

    store.free(first.slot)
    third = create(store, c, persistent, 3)

    assert third.evicted == ()
    assert used(store) == MEMORY
    assert store.read(third.slot, PAGE_SIZE) == c
    assert counts(store) == ((0, 2, 0) if persistent else (2, 0, 0))


def test_charge_counts_against_the_budget(case: StoreCase, store: PageStore) -> None:
    a, b, c = page(1), page(2), page(3)
    cost = case.same_cost(a, b, c)
    leave_room(store, 2 * (cost + case.slot_cost))
    store.charge(cost)  # the core's own metadata takes the room of one page
    assert MEMORY - used(store) == cost + 2 * case.slot_cost

    create(store, a, False, 1)
    second = create(store, b, False, 2)
    assert second.evicted == (1,)

    store.charge(-cost)
    third = create(store, c, False, 3)
    assert third.evicted == ()
    assert counts(store) == (2, 0, 1)


def test_reserve_charges_what_fits_evicting_ephemeral_pages_as_a_put_would(
    case: StoreCase, store: PageStore
) -> None:
    a, b = page(1), page(2)
    cost = case.same_cost(a, b)
    leave_room(store, 3 * (cost + case.slot_cost))
    create(store, a, False, 1)
    create(store, b, True, 2)
    assert store.reserve(cost + case.slot_cost) == ()  # fits: charged, nothing evicted
    assert used(store) == MEMORY
    assert store.reserve(1) == (1,)  # room made as for a page: the oldest ephemeral one goes
    assert counts(store) == (0, 1, 1)
    before = used(store)
    assert store.reserve(MEMORY) is None  # does not fit even with every ephemeral page gone
    assert used(store) == before
    assert counts(store) == (0, 1, 1)


# -- eviction ----------------------------------------------------------------------------------


def test_eviction_takes_ephemeral_pages_oldest_put_first(case: StoreCase, store: PageStore) -> None:
    pages = {version: page(version) for version in range(1, 8)}
    cost = case.same_cost(*pages.values())
    leave_room(store, 4 * (cost + case.slot_cost))
    eph1 = create(store, pages[1], False, 1)
    pers2 = create(store, pages[2], True, 2)
    create(store, pages[3], False, 3)
    eph4 = create(store, pages[4], False, 4)
    assert used(store) == MEMORY
    assert store.read(eph1.slot, PAGE_SIZE) == pages[1]  # a read does not make a page younger

    assert create(store, pages[5], False, 5).evicted == (1,)
    assert create(store, pages[6], True, 6).evicted == (3,)
    store.free(eph4.slot)  # a freed page is not evicted again: the next put has room
    assert create(store, pages[7], False, 7).evicted == ()

    assert counts(store) == (2, 2, 2)
    assert used(store) == MEMORY
    assert store.read(pers2.slot, PAGE_SIZE) == pages[2]


def test_persistent_put_may_evict_ephemeral_pages(case: StoreCase, store: PageStore) -> None:
    a, b, c = page(1), page(2), page(3)
    leave_room(store, 2 * (case.same_cost(a, b, c) + case.slot_cost))
    create(store, a, False, 1)
    second = create(store, b, False, 2)

    third = create(store, c, True, 3)

    assert third.evicted == (1,)
    assert store.read(second.slot, PAGE_SIZE) == b
    assert store.read(third.slot, PAGE_SIZE) == c
    assert counts(store) == (1, 1, 1)


@pytest.mark.parametrize("persistent", [False, True], ids=["ephemeral", "persistent"])
def test_persistent_pages_are_never_evicted(
    case: StoreCase, store: PageStore, persistent: bool
) -> None:
    a, b, c = page(1), page(2), page(3)
    leave_room(store, 2 * (case.same_cost(a, b, c) + case.slot_cost))
    first = create(store, a, True, 1)
    second = create(store, b, True, 2)

    assert store.create(c, persistent, 3, 3) == Rejected(RejectReason.NO_SPACE)
    assert store.read(first.slot, PAGE_SIZE) == a
    assert store.read(second.slot, PAGE_SIZE) == b
    assert counts(store) == (0, 2, 0)
    assert used(store) == MEMORY


@pytest.mark.parametrize("persistent", [False, True], ids=["ephemeral", "persistent"])
def test_a_put_that_cannot_fit_evicts_nothing(
    case: StoreCase, store: PageStore, persistent: bool
) -> None:
    eph_a, eph_b, pers, new = page(1), page(2), page(3), page(4)
    cost = case.same_cost(eph_a, eph_b, pers, new)
    leave_room(store, 3 * (cost + case.slot_cost))
    slots = {
        eph_a: create(store, eph_a, False, 1).slot,
        pers: create(store, pers, True, 2).slot,
        eph_b: create(store, eph_b, False, 3).slot,
    }
    # One byte more than evicting both ephemeral pages would free (and a new slot, if any).
    store.charge(cost + 1)
    full = used(store)

    assert store.create(new, persistent, 4, 4) == Rejected(RejectReason.NO_SPACE)
    for data, slot in slots.items():
        assert store.read(slot, PAGE_SIZE) == data
    assert counts(store) == (2, 1, 0)
    assert used(store) == full

    store.charge(-1)  # now it fits exactly, with every ephemeral page gone
    assert create(store, new, persistent, 5).evicted == (1, 3)
    assert counts(store) == ((1, 1, 2) if not persistent else (0, 2, 2))
    assert used(store) == MEMORY


def test_steady_eviction_evicts_one_page_per_put_and_leaks_no_bytes(
    case: StoreCase, store: PageStore
) -> None:
    pages = [page(seed) for seed in range(1, 9)]
    cost = case.same_cost(*pages)
    capacity = 5
    leave_room(store, capacity * (cost + case.slot_cost))
    live: list[int] = []
    for version in range(1, 201):
        created = create(store, pages[version % len(pages)], False, version)
        expected = () if version <= capacity else (version - capacity,)
        assert created.evicted == expected, f"put {version}"
        live = [*live[len(expected) :], created.slot]

    assert counts(store) == (capacity, 0, 200 - capacity)
    assert used(store) == MEMORY
    for slot in live:
        store.free(slot)
    assert used(store) == MEMORY - capacity * cost
