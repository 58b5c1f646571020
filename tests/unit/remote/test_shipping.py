"""The core half of RAMster (`ramster.remote.shipping`, reference §A5.2 to §A5.6): taking pages to
ship, swapping them for remote handles by compare-and-swap, answering fetched pages, queueing the
flushes of peer copies, and bringing pages home.

Every race of §A1.5 (#5, #10) is forced here by calling the core in the order the network would
interleave it: take, then the racing put or flush, then complete (or get, race, localify, take). No
event loop, no peers: a "peer" is a node number and the packed page a shipment carried. Tests
run over `ZCache` and `PlainStore` where the store makes no difference to the rule; budgets are
computed from the stores' own constants and the core's (a remote page still costs its handle and
its index entry, `REMOTE_PAGE_BYTES`). The async layer that calls this is in
tests/unit/remote/; the holder side in tests/unit/holder/test_foreign.py.
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import Callable

import pytest

from ramster.holder.foreign import origin_client
from ramster.page import PackedPage, compress_page, pack_page
from ramster.remote.handles import (
    REMOTE_COUNTERS,
    REMOTE_HANDLE_BYTES,
    REMOTE_PAGE_BYTES,
    RemoteFlush,
    RemoteRef,
    Shipment,
    Unanswered,
    origin_tmem,
)
from ramster.remote.shipping import (
    complete_shipments,
    drop_remote,
    localify,
    remote_refs,
    repatriate,
    take_shipments,
)
from ramster.tmem import Hit, PageStore, PoolSpec, Rejected, RejectReason, Stored, Tmem
from ramster.tmem.pool import INDEX_BYTES_PER_PAGE, OBJECT_BYTES
from ramster.zcache import PlainStore, ZCache, ZcacheConfig
from ramster.zcache.plain import PLAIN_PAGE_BYTES
from ramster.zcache.store import PAGE_BYTES, SLOT_BYTES, payload_heap_bytes
from tests.support.foreign import ForeignPage, put_foreign_pages

APP = "app"
PAGE_SIZE = 4096
EPHEMERAL = PoolSpec()
PERSISTENT = PoolSpec(persistent=True)
PEER, OTHER_PEER = 2, 3
ALL = 1 << 30
"""A byte limit no test reaches."""
STORES = ["zcache", "plain"]
FIT = 32
"""Pages a `fitting_store` holds exactly (enough for ZCache's 64 KiB minimum budget)."""


def page(seed: int) -> bytes:
    """A distinct page that lz4 packs to 2034 bytes (kept below every admission limit)."""
    return random.Random(seed).randbytes(2000) + bytes(PAGE_SIZE - 2000)


def zcache_cost(data: bytes) -> int:
    """Budget bytes a stored page frees in ZCache when it leaves (its slot stays)."""
    payload, same_filled = compress_page(data)
    assert not same_filled
    return payload_heap_bytes(len(payload)) + PAGE_BYTES


def page_cost(kind: str, data: bytes) -> int:
    return zcache_cost(data) if kind == "zcache" else len(data) + PLAIN_PAGE_BYTES


def make_store(kind: str) -> ZCache | PlainStore:
    if kind == "zcache":
        return ZCache(ZcacheConfig(memory=4 << 20))
    return PlainStore(memory=64 << 20)


def fitting_store(
    kind: str, pages: int = FIT, objects: int = 1, remote: int = 0
) -> ZCache | PlainStore:
    """A store whose budget holds exactly `pages` pages of `page()` in `objects` objects, and
    the handles of `remote` pages on peers."""
    meta = objects * OBJECT_BYTES + remote * REMOTE_PAGE_BYTES
    if kind == "zcache":
        return ZCache(ZcacheConfig(memory=meta + pages * (SLOT_BYTES + zcache_cost(page(0)))))
    return PlainStore(memory=meta + pages * (PAGE_SIZE + PLAIN_PAGE_BYTES))


def used(store: PageStore) -> int:
    return store.counters()["used_bytes"]


def store_pages(store: PageStore) -> tuple[int, int]:
    counters = store.counters()
    return counters["eph_zpages"], counters["pers_zpages"]


def put(tmem: Tmem, pool: int, oid: int, index: int, data: bytes) -> int:
    """Put a page that must be stored; its version."""
    outcome = tmem.put(APP, pool, oid, index, data)
    assert isinstance(outcome, Stored), outcome
    return outcome.version


def ship_all(tmem: Tmem, persistent: bool, node: int, max_pages: int = 1000) -> list[Shipment]:
    """Take the oldest pages of a class and have `node` store every one."""
    shipments = take_shipments(tmem.table, persistent, max_pages, ALL)
    assert complete_shipments(tmem.table, node, shipments, [True] * len(shipments)) == len(
        shipments
    )
    return shipments


def remote_ref(tmem: Tmem, pool: int, oid: int, index: int) -> RemoteRef:
    [found] = tmem.get_many_packed(APP, pool, [(oid, index)])
    assert isinstance(found, RemoteRef), found
    return found


def keys(shipments: list[Shipment]) -> list[tuple[tuple[int, int, int], int]]:
    return [(s.oid, s.index) for s in shipments]


def answer(shipment: Shipment) -> tuple[PackedPage, int]:
    """What the peer that stored `shipment` answers a get with: the page and its version."""
    return shipment.page, shipment.version


def got(
    tmem: Tmem, ref: RemoteRef, found: tuple[PackedPage, int] | None, freed: bool
) -> PackedPage | None:
    """What a get of `ref` answers once its holder replied `found`, as the node runs it:
    localify, then (`freed`: a get that frees) take the page once its answer is on its way."""
    hit = localify(tmem.table, ref, found)
    assert not isinstance(hit, Unanswered)
    if hit is None or (freed and tmem.take([hit]) != [True]):
        return None
    return hit.page


def test_every_test_page_costs_the_same() -> None:
    """The budgets below are exact only because every page of `page()` costs the same."""
    assert {len(compress_page(page(seed))[0]) for seed in range(300)} == {2034}
    assert zcache_cost(page(0)) == payload_heap_bytes(2034) + PAGE_BYTES == 2112


def test_a_remote_page_costs_its_handle_and_its_index_entry() -> None:
    assert REMOTE_PAGE_BYTES == REMOTE_HANDLE_BYTES + INDEX_BYTES_PER_PAGE == 20


# -- take_shipments ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", STORES)
def test_take_takes_the_oldest_pages_of_one_class_at_most_max_pages(kind: str) -> None:
    tmem = origin_tmem(make_store(kind))
    eph = tmem.new_pool(APP, EPHEMERAL)
    pers = tmem.new_pool(APP, PERSISTENT)
    versions = {}
    for index in range(5):
        versions[eph, index] = put(tmem, eph, 7, index, page(index))
        versions[pers, index] = put(tmem, pers, 8, index, page(10 + index))

    first = take_shipments(tmem.table, False, 3, ALL)
    assert first == [
        Shipment(
            obj_id=s.obj_id,
            slot=s.slot,
            pool_uid=first[0].pool_uid,
            persistent=False,
            oid=(7, 0, 0),
            index=index,
            version=versions[eph, index],
            page=pack_page(page(index)),
        )
        for index, s in enumerate(first)
    ]
    assert len(first) == 3
    # Taken pages are out of the order until completed or requeued: the next take goes on.
    assert keys(take_shipments(tmem.table, False, 10, ALL)) == [((7, 0, 0), 3), ((7, 0, 0), 4)]
    assert take_shipments(tmem.table, False, 10, ALL) == []

    persistent = take_shipments(tmem.table, True, 10, ALL)
    assert [(s.oid, s.index, s.version, s.persistent) for s in persistent] == [
        ((8, 0, 0), index, versions[pers, index], True) for index in range(5)
    ]
    assert persistent[0].pool_uid != first[0].pool_uid
    # Taking changes nothing a client sees.
    assert tmem.get(APP, pers, 8, 2) == page(12)
    assert tmem.counters()["remote_pages"] == 0


@pytest.mark.parametrize("kind", STORES)
def test_take_stops_once_max_bytes_is_reached_and_leaves_the_rest(kind: str) -> None:
    tmem = origin_tmem(make_store(kind))
    pool = tmem.new_pool(APP, PERSISTENT)
    for index in range(6):
        put(tmem, pool, 7, index, page(index))
    zsize = len(pack_page(page(0)).payload)

    # The page that reaches max_bytes is still taken; the ones after it are not.
    assert [s.index for s in take_shipments(tmem.table, True, 5, 2 * zsize)] == [0, 1]
    # 2..5 never left the order: they are taken next, oldest first.
    assert [s.index for s in take_shipments(tmem.table, True, 10, ALL)] == [2, 3, 4, 5]

    tmem2 = origin_tmem(make_store(kind))
    pool2 = tmem2.new_pool(APP, PERSISTENT)
    for index in range(6):
        put(tmem2, pool2, 7, index, page(index))
    assert [s.index for s in take_shipments(tmem2.table, True, 5, 2 * zsize + 1)] == [0, 1, 2]


@pytest.mark.parametrize("kind", STORES)
def test_pages_cut_at_max_bytes_keep_their_age(kind: str) -> None:
    tmem = origin_tmem(make_store(kind))
    pool = tmem.new_pool(APP, PERSISTENT)
    for index in range(6):
        put(tmem, pool, 7, index, page(index))

    assert [s.index for s in take_shipments(tmem.table, True, 5, 1)] == [0]
    # 1..4 were never shipped, refused or raced: they are still the oldest.
    assert [s.index for s in take_shipments(tmem.table, True, 5, 1)] == [1]
    assert [s.index for s in take_shipments(tmem.table, True, 10, ALL)] == [2, 3, 4, 5]


@pytest.mark.parametrize("kind", STORES)
def test_take_never_takes_foreign_pages(kind: str) -> None:
    tmem = origin_tmem(make_store(kind))
    origin = origin_client(5, "e5")
    for persistent in (False, True):
        outcomes = put_foreign_pages(
            tmem.table,
            origin,
            [
                ForeignPage(1 + persistent, (9, 0, 0), i, 100 + i, persistent, pack_page(page(i)))
                for i in range(3)
            ],
        )
        assert outcomes == [Stored(100), Stored(101), Stored(102)]
    pool = tmem.new_pool(APP, PERSISTENT)
    put(tmem, pool, 7, 0, page(50))

    assert take_shipments(tmem.table, False, 100, ALL) == []
    assert keys(take_shipments(tmem.table, True, 100, ALL)) == [((7, 0, 0), 0)]
    assert take_shipments(tmem.table, True, 100, ALL) == []


# -- complete_shipments ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("persistent", [False, True], ids=["eph", "pers"])
def test_stored_pages_become_remote(kind: str, persistent: bool) -> None:
    store = make_store(kind)
    tmem = origin_tmem(store)
    pool = tmem.new_pool(APP, PoolSpec(persistent=persistent))
    versions = [put(tmem, pool, 7, index, page(index)) for index in range(4)]
    before = used(store)

    shipments = take_shipments(tmem.table, persistent, 10, ALL)
    assert complete_shipments(tmem.table, PEER, shipments, [True] * 4) == 4

    kind_name = "pers" if persistent else "eph"
    counters = tmem.counters()
    assert counters[f"{kind_name}_pages_remoted"] == 4
    assert counters[f"{'eph' if persistent else 'pers'}_pages_remoted"] == 0
    assert counters["remote_pages"] == 4
    assert counters["remote_pers_pages"] == (4 if persistent else 0)
    assert store_pages(store) == (0, 0)
    freed = sum(page_cost(kind, page(index)) for index in range(4))
    assert used(store) == before - freed + 4 * REMOTE_PAGE_BYTES
    assert [tmem.page_version(APP, pool, 7, index) for index in range(4)] == versions
    assert remote_ref(tmem, pool, 7, 2) == RemoteRef(
        node=PEER,
        obj_id=shipments[2].obj_id,
        pool_uid=shipments[2].pool_uid,
        persistent=persistent,
        oid=(7, 0, 0),
        index=2,
        version=versions[2],
        page_size=PAGE_SIZE,
    )
    assert tmem.table.elsewhere.drain() == []
    assert (
        take_shipments(tmem.table, persistent, 10, ALL) == []
    )  # remote pages are not shipped again


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("persistent", [False, True], ids=["eph", "pers"])
def test_refused_pages_stay_local_and_are_shipped_again(kind: str, persistent: bool) -> None:
    store = make_store(kind)
    tmem = origin_tmem(store)
    pool = tmem.new_pool(APP, PoolSpec(persistent=persistent))
    versions = [put(tmem, pool, 7, index, page(index)) for index in range(3)]

    shipments = take_shipments(tmem.table, persistent, 10, ALL)
    assert complete_shipments(tmem.table, PEER, shipments, [True, False, True]) == 2

    kind_name = "pers" if persistent else "eph"
    counters = tmem.counters()
    assert counters[f"{kind_name}_pages_remoted"] == 2
    assert counters[f"{kind_name}_pages_remote_failed"] == 1
    assert counters["remote_pages"] == 2
    assert tmem.get(APP, pool, 7, 1, free=False) == page(1)
    assert tmem.page_version(APP, pool, 7, 1) == versions[1]

    [again] = take_shipments(tmem.table, persistent, 10, ALL)
    assert (again.index, again.version, again.page) == (1, versions[1], pack_page(page(1)))
    assert complete_shipments(tmem.table, OTHER_PEER, [again], [True]) == 1
    assert tmem.counters()[f"{kind_name}_pages_remoted"] == 3
    assert remote_ref(tmem, pool, 7, 1).node == OTHER_PEER
    assert store_pages(store) == (0, 0)


# -- the budget of remote pages ----------------------------------------------------------------


@pytest.mark.parametrize("kind", STORES)
def test_remote_pages_are_charged_to_the_budget(kind: str) -> None:
    """A page on a peer frees its bytes here but keeps its handle and index entry."""
    store = make_store(kind)
    tmem = origin_tmem(store)
    pool = tmem.new_pool(APP, PERSISTENT)
    for index in range(4):
        put(tmem, pool, 7, index, page(index))
    before = used(store)

    shipments = take_shipments(tmem.table, True, 3, ALL)
    assert used(store) == before  # taking a page moves nothing yet
    assert complete_shipments(tmem.table, PEER, shipments, [True, False, True]) == 2

    cost = page_cost(kind, page(0))
    assert used(store) == before - 2 * cost + 2 * REMOTE_PAGE_BYTES  # the refused page stays
    remoted = used(store)
    put(tmem, pool, 7, 0, page(10))  # a put over a remote page gives its handle back
    assert used(store) == remoted - REMOTE_PAGE_BYTES + cost
    assert tmem.counters()["remote_pages"] == 1


HandleEnd = Callable[[Tmem, int, RemoteRef, Shipment], object]
HANDLE_ENDS: dict[str, HandleEnd] = {
    "flush_page": lambda tmem, pool, ref, shipment: tmem.flush_page(APP, pool, 7, 0),
    "flush_object": lambda tmem, pool, ref, shipment: tmem.flush_object(APP, pool, 7),
    "destroy_pool": lambda tmem, pool, ref, shipment: tmem.destroy_pool(APP, pool),
    "get_and_free": lambda tmem, pool, ref, shipment: got(tmem, ref, answer(shipment), True),
    "peer_lost_it": lambda tmem, pool, ref, shipment: localify(tmem.table, ref, None),
    "unanswered": lambda tmem, pool, ref, shipment: localify(tmem.table, ref, Unanswered((PEER,))),
    "drop_remote": lambda tmem, pool, ref, shipment: drop_remote(tmem.table, ref),
}


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("end", HANDLE_ENDS)
def test_every_way_a_remote_handle_goes_gives_its_bytes_back(kind: str, end: str) -> None:
    store = make_store(kind)
    tmem = origin_tmem(store)
    pool = tmem.new_pool(APP, EPHEMERAL)
    put(tmem, pool, 7, 0, page(1))
    [shipment] = ship_all(tmem, False, PEER)
    ref = remote_ref(tmem, pool, 7, 0)
    remoted = used(store)

    HANDLE_ENDS[end](tmem, pool, ref, shipment)

    assert tmem.counters()["remote_pages"] == 0
    assert tmem.counters()["obj_count"] == 0
    assert used(store) == remoted - REMOTE_PAGE_BYTES - OBJECT_BYTES  # its object went too


# -- the races of remotify (§A1.5 #10) ---------------------------------------------------------


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("persistent", [False, True], ids=["eph", "pers"])
def test_a_put_between_take_and_complete_keeps_the_new_page(kind: str, persistent: bool) -> None:
    tmem = origin_tmem(make_store(kind))
    pool = tmem.new_pool(APP, PoolSpec(persistent=persistent))
    old = put(tmem, pool, 7, 0, page(1))
    [shipment] = take_shipments(tmem.table, persistent, 10, ALL)

    new = put(tmem, pool, 7, 0, page(2))  # lands while the batch is on the wire
    assert complete_shipments(tmem.table, PEER, [shipment], [True]) == 0

    assert new > old
    assert tmem.page_version(APP, pool, 7, 0) == new
    assert tmem.get(APP, pool, 7, 0, free=False) == page(2)
    # The kernel's tmem_replace would have pointed the key at the peer's old copy; here that
    # copy is an orphan, and the flush of that version (not of the key) is queued.
    assert shipment.version == old
    assert tmem.table.elsewhere.drain() == [RemoteFlush(PEER, shipment.pool_uid, (7, 0, 0), 0, old)]
    counters = tmem.counters()
    assert counters["remote_pages"] == 0
    assert counters["eph_pages_remoted"] + counters["pers_pages_remoted"] == 0

    [again] = take_shipments(tmem.table, persistent, 10, ALL)
    assert again.version == new
    if kind == "zcache":  # the new page reused the freed slot: only the version tells them apart
        assert again.slot == shipment.slot


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("persistent", [False, True], ids=["eph", "pers"])
def test_a_flush_between_take_and_complete_orphans_the_peer_copy(
    kind: str, persistent: bool
) -> None:
    tmem = origin_tmem(make_store(kind))
    pool = tmem.new_pool(APP, PoolSpec(persistent=persistent))
    flushed = put(tmem, pool, 7, 0, page(1))
    put(tmem, pool, 7, 1, page(2))
    shipments = take_shipments(tmem.table, persistent, 10, ALL)

    assert tmem.flush_page(APP, pool, 7, 0)
    assert tmem.table.elsewhere.drain() == []  # a local page: nothing to tell a peer yet
    assert complete_shipments(tmem.table, PEER, shipments, [True, True]) == 1

    assert tmem.page_version(APP, pool, 7, 0) is None
    assert tmem.get_many_packed(APP, pool, [(7, 0)]) == [None]
    assert remote_ref(tmem, pool, 7, 1).node == PEER
    assert tmem.table.elsewhere.drain() == [
        RemoteFlush(PEER, shipments[0].pool_uid, (7, 0, 0), 0, flushed)
    ]


@pytest.mark.parametrize("kind", STORES)
def test_an_eviction_between_take_and_complete_orphans_the_peer_copy(kind: str) -> None:
    store = fitting_store(kind)
    tmem = origin_tmem(store)
    pool = tmem.new_pool(APP, EPHEMERAL)
    versions = [put(tmem, pool, 7, index, page(index)) for index in range(FIT)]
    shipments = take_shipments(tmem.table, False, 2, ALL)

    put(tmem, pool, 7, FIT, page(FIT))  # the store is full: the oldest page goes
    assert store.counters()["evicted_eph_zpages"] == 1
    assert complete_shipments(tmem.table, PEER, shipments, [True, True]) == 1

    assert tmem.page_version(APP, pool, 7, 0) is None
    assert remote_ref(tmem, pool, 7, 1).node == PEER
    assert tmem.table.elsewhere.drain() == [
        RemoteFlush(PEER, shipments[0].pool_uid, (7, 0, 0), 0, versions[0])
    ]


@pytest.mark.parametrize("kind", STORES)
def test_a_refused_page_flushed_meanwhile_is_neither_requeued_nor_flushed(kind: str) -> None:
    tmem = origin_tmem(make_store(kind))
    pool = tmem.new_pool(APP, PERSISTENT)
    put(tmem, pool, 7, 0, page(1))
    shipments = take_shipments(tmem.table, True, 10, ALL)

    tmem.flush_page(APP, pool, 7, 0)
    assert complete_shipments(tmem.table, PEER, shipments, [False]) == 0

    assert tmem.counters()["pers_pages_remote_failed"] == 1
    assert tmem.table.elsewhere.drain() == []  # the peer stored nothing
    assert take_shipments(tmem.table, True, 10, ALL) == []


# -- remote gets: localify (§A1.5 #5, §A5.5) ---------------------------------------------------


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("persistent", [False, True], ids=["eph", "pers"])
@pytest.mark.parametrize("freed", [False, True], ids=["keep", "free"])
def test_a_flush_during_a_remote_get_is_a_miss(kind: str, persistent: bool, freed: bool) -> None:
    tmem = origin_tmem(make_store(kind))
    pool = tmem.new_pool(APP, PoolSpec(persistent=persistent))
    version = put(tmem, pool, 7, 0, page(1))
    [shipment] = ship_all(tmem, persistent, PEER)
    ref = remote_ref(tmem, pool, 7, 0)

    assert tmem.flush_page(APP, pool, 7, 0)  # while the request is on the wire
    # The flush names the version the handle held: the one shipped.
    assert tmem.table.elsewhere.drain() == [
        RemoteFlush(PEER, shipment.pool_uid, (7, 0, 0), 0, version)
    ]
    assert got(tmem, ref, answer(shipment), freed) is None

    kind_name = "pers" if persistent else "eph"
    counters = tmem.counters()
    assert counters[f"remote_{kind_name}_pages_unsucc_get"] == 1
    assert counters[f"remote_{kind_name}_pages_succ_get"] == 0
    assert counters["remote_pages"] == 0
    assert tmem.page_version(APP, pool, 7, 0) is None  # nothing resurrected
    assert tmem.get_many_packed(APP, pool, [(7, 0)]) == [None]
    assert tmem.table.elsewhere.drain() == []


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("persistent", [False, True], ids=["eph", "pers"])
def test_a_put_during_a_remote_get_answers_the_newer_local_page(
    kind: str, persistent: bool
) -> None:
    tmem = origin_tmem(make_store(kind))
    pool = tmem.new_pool(APP, PoolSpec(persistent=persistent))
    old = put(tmem, pool, 7, 0, page(1))
    [shipment] = ship_all(tmem, persistent, PEER)
    ref = remote_ref(tmem, pool, 7, 0)

    new = put(tmem, pool, 7, 0, page(2))  # while the request is on the wire
    # The flush removes the replaced copy only: the old version, not the new one.
    assert tmem.table.elsewhere.drain() == [RemoteFlush(PEER, shipment.pool_uid, (7, 0, 0), 0, old)]
    assert got(tmem, ref, answer(shipment), False) == pack_page(page(2))

    kind_name = "pers" if persistent else "eph"
    assert tmem.counters()[f"remote_{kind_name}_pages_unsucc_get"] == 1
    assert tmem.page_version(APP, pool, 7, 0) == new
    assert tmem.get(APP, pool, 7, 0, free=False) == page(2)
    assert tmem.counters()["remote_pages"] == 0


@pytest.mark.parametrize("kind", STORES)
def test_a_get_and_free_answers_the_newer_local_page_and_frees_it(kind: str) -> None:
    tmem = origin_tmem(make_store(kind))
    pool = tmem.new_pool(APP, EPHEMERAL)
    put(tmem, pool, 7, 0, page(1))
    [shipment] = ship_all(tmem, False, PEER)
    ref = remote_ref(tmem, pool, 7, 0)

    put(tmem, pool, 7, 0, page(2))
    assert got(tmem, ref, answer(shipment), True) == pack_page(page(2))

    assert tmem.page_version(APP, pool, 7, 0) is None
    assert store_pages(tmem.table.store) == (0, 0)
    assert tmem.counters()["obj_count"] == 0


@pytest.mark.parametrize("kind", STORES)
def test_a_put_and_reship_during_a_remote_get_is_a_miss(kind: str) -> None:
    tmem = origin_tmem(make_store(kind))
    pool = tmem.new_pool(APP, PERSISTENT)
    put(tmem, pool, 7, 0, page(1))
    [shipment] = ship_all(tmem, True, PEER)
    ref = remote_ref(tmem, pool, 7, 0)

    new = put(tmem, pool, 7, 0, page(2))
    ship_all(tmem, True, OTHER_PEER)
    assert got(tmem, ref, answer(shipment), False) is None  # the old bytes are stale

    counters = tmem.counters()
    assert counters["remote_pers_pages_unsucc_get"] == 1
    assert counters["remote_pers_pages_lost"] == 0  # the newer page is on OTHER_PEER
    assert tmem.page_version(APP, pool, 7, 0) == new
    assert remote_ref(tmem, pool, 7, 0).node == OTHER_PEER


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("freed", [False, True], ids=["keep", "free"])
def test_a_put_and_reship_to_the_same_peer_during_a_get_answers_the_newer_page(
    kind: str, freed: bool
) -> None:
    tmem = origin_tmem(make_store(kind))
    pool = tmem.new_pool(APP, PERSISTENT)
    put(tmem, pool, 7, 0, page(1))
    ship_all(tmem, True, PEER)
    ref = remote_ref(tmem, pool, 7, 0)

    put(tmem, pool, 7, 0, page(2))  # while the request is on the wire...
    tmem.table.elsewhere.drain()
    [newer] = ship_all(tmem, True, PEER)  # ...the new page reaches the same peer first
    # The peer answers what it holds now: the newer page, which the handle names.
    assert got(tmem, ref, answer(newer), freed) == pack_page(page(2))

    counters = tmem.counters()
    assert counters["remote_pers_pages_succ_get"] == 1
    assert counters["remote_pers_pages_unsucc_get"] == counters["remote_pers_pages_lost"] == 0
    if freed:  # taken: the handle goes, and the copy the peer answered from is flushed
        assert tmem.page_version(APP, pool, 7, 0) is None
        assert counters["remote_pages"] == 0
        assert tmem.table.elsewhere.drain() == [RemoteFlush.of(PEER, newer)]
    else:
        assert remote_refs(tmem.table) == [dataclasses.replace(ref, version=newer.version)]
        assert tmem.table.elsewhere.drain() == []


@pytest.mark.parametrize("kind", STORES)
def test_a_persistent_page_the_peer_lost_is_counted_and_dropped(kind: str) -> None:
    tmem = origin_tmem(make_store(kind))
    pool = tmem.new_pool(APP, PERSISTENT)
    put(tmem, pool, 7, 0, page(1))
    put(tmem, pool, 7, 1, page(2))
    ship_all(tmem, True, PEER)
    ref = remote_ref(tmem, pool, 7, 0)

    assert got(tmem, ref, None, False) is None

    counters = tmem.counters()
    assert counters["remote_pers_pages_lost"] == 1
    assert counters["remote_pers_pages_unsucc_get"] == 1
    assert counters["remote_pages"] == counters["remote_pers_pages"] == 1
    assert tmem.page_version(APP, pool, 7, 0) is None
    assert tmem.table.elsewhere.drain() == []  # the peer has no copy to flush


@pytest.mark.parametrize("kind", STORES)
def test_an_ephemeral_page_the_peer_dropped_is_a_plain_miss(kind: str) -> None:
    tmem = origin_tmem(make_store(kind))
    pool = tmem.new_pool(APP, EPHEMERAL)
    put(tmem, pool, 7, 0, page(1))
    ship_all(tmem, False, PEER)
    ref = remote_ref(tmem, pool, 7, 0)

    assert got(tmem, ref, None, False) is None

    counters = tmem.counters()
    assert counters["remote_pers_pages_lost"] == 0
    assert counters["remote_eph_pages_unsucc_get"] == 1
    assert counters["remote_pages"] == 0
    assert counters["obj_count"] == 0
    assert tmem.page_version(APP, pool, 7, 0) is None
    assert tmem.table.elsewhere.drain() == []


@pytest.mark.parametrize("kind", STORES)
def test_a_private_ephemeral_get_frees_the_handle(kind: str) -> None:
    tmem = origin_tmem(make_store(kind))
    pool = tmem.new_pool(APP, EPHEMERAL)
    put(tmem, pool, 7, 0, page(1))
    [shipment] = ship_all(tmem, False, PEER)

    ref = remote_ref(tmem, pool, 7, 0)  # the pool's rule (free) leaves a remote page in place
    assert tmem.page_version(APP, pool, 7, 0) == shipment.version
    assert got(tmem, ref, answer(shipment), True) == shipment.page

    counters = tmem.counters()
    assert counters["remote_eph_pages_succ_get"] == 1
    assert counters["remote_pages"] == 0
    assert tmem.page_version(APP, pool, 7, 0) is None
    # The peer kept its copy while the answer was not sent yet: it is flushed now.
    assert tmem.table.elsewhere.drain() == [RemoteFlush.of(PEER, shipment)]


@pytest.mark.parametrize("kind", STORES)
def test_a_persistent_get_keeps_the_handle_unless_asked_to_free(kind: str) -> None:
    tmem = origin_tmem(make_store(kind))
    pool = tmem.new_pool(APP, PERSISTENT)
    put(tmem, pool, 7, 0, page(1))
    [shipment] = ship_all(tmem, True, PEER)
    ref = remote_ref(tmem, pool, 7, 0)

    assert got(tmem, ref, answer(shipment), False) == shipment.page
    assert got(tmem, ref, answer(shipment), False) == shipment.page
    assert tmem.page_version(APP, pool, 7, 0) == shipment.version
    assert remote_refs(tmem.table) == [ref]

    assert tmem.frees_on_get(APP, pool, None) is False
    assert tmem.frees_on_get(APP, pool, True) is True
    assert got(tmem, ref, answer(shipment), True) == shipment.page

    counters = tmem.counters()
    assert counters["remote_pers_pages_succ_get"] == 3
    assert counters["remote_pages"] == counters["remote_pers_pages"] == 0
    assert tmem.page_version(APP, pool, 7, 0) is None
    assert tmem.table.elsewhere.drain() == [RemoteFlush.of(PEER, shipment)]


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("persistent", [False, True], ids=["eph", "pers"])
def test_a_get_frees_nothing_until_it_takes_what_it_found(kind: str, persistent: bool) -> None:
    """The node's get that frees: read, build the answer, then take. A key flushed, put again
    or taken by another get meanwhile is not taken (that answer is a miss)."""
    tmem = origin_tmem(make_store(kind))
    pool = tmem.new_pool(APP, PoolSpec(persistent=persistent))
    versions = [put(tmem, pool, 7, index, page(index)) for index in range(4)]
    hits = tmem.get_many_packed(APP, pool, [(7, index) for index in range(4)] + [(7, 9)])

    assert hits == [
        Hit(pack_page(page(index)), 0, index, versions[index]) for index in range(4)
    ] + [None]
    assert [tmem.page_version(APP, pool, 7, index) for index in range(4)] == versions
    tmem.flush_page(APP, pool, 7, 1)
    new = put(tmem, pool, 7, 2, page(20))
    assert tmem.take([hit for hit in hits[:3] if hit is not None]) == [True, False, False]
    found = [hit for hit in hits if hit is not None]
    assert tmem.take(found) == [False, False, False, True]
    assert tmem.take(found) == [False] * 4  # each page is taken once only

    assert tmem.page_version(APP, pool, 7, 0) is None
    assert tmem.page_version(APP, pool, 7, 2) == new  # the newer page stays
    assert tmem.page_version(APP, pool, 7, 3) is None


@pytest.mark.parametrize("kind", STORES)
def test_two_gets_that_free_one_remote_page_give_it_to_one_of_them(kind: str) -> None:
    tmem = origin_tmem(make_store(kind))
    pool = tmem.new_pool(APP, PERSISTENT)
    put(tmem, pool, 7, 0, page(1))
    [shipment] = ship_all(tmem, True, PEER)
    ref = remote_ref(tmem, pool, 7, 0)

    # Both gets share one answer of the peer (the node coalesces them) ...
    first, second = (
        localify(tmem.table, ref, answer(shipment)),
        localify(tmem.table, ref, answer(shipment)),
    )
    assert first == second == Hit(shipment.page, ref.obj_id, 0, shipment.version)
    # ... and only the first to send its answer takes the page.
    assert [tmem.take([first]), tmem.take([second])] == [[True], [False]]
    assert tmem.page_version(APP, pool, 7, 0) is None
    assert tmem.table.elsewhere.drain() == [RemoteFlush.of(PEER, shipment)]


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("persistent", [False, True], ids=["eph", "pers"])
def test_a_remote_page_no_holder_answered_stays_if_persistent_and_is_a_miss_for_good_if_not(
    kind: str, persistent: bool
) -> None:
    tmem = origin_tmem(make_store(kind))
    pool = tmem.new_pool(APP, PoolSpec(persistent=persistent))
    version = put(tmem, pool, 7, 0, page(1))
    [shipment] = ship_all(tmem, persistent, PEER)
    ref = remote_ref(tmem, pool, 7, 0)

    found = localify(tmem.table, ref, Unanswered((PEER,)))

    counters = tmem.counters()
    kind_name = "pers" if persistent else "eph"
    assert counters["remote_pers_pages_lost"] == counters[f"remote_{kind_name}_pages_succ_get"] == 0
    if persistent:  # not gone: asked for again later
        assert found == Unanswered((PEER,))
        assert remote_refs(tmem.table) == [ref]
        assert tmem.page_version(APP, pool, 7, 0) == version
        assert tmem.table.elsewhere.drain() == []
        assert counters["remote_pers_pages_unsucc_get"] == 0
    else:  # a miss, and every later get misses too: the record goes, the holder drops its copy
        assert found is None
        assert tmem.page_version(APP, pool, 7, 0) is None
        assert counters["remote_pages"] == 0
        assert tmem.table.elsewhere.drain() == [RemoteFlush.of(PEER, shipment)]
        assert counters["remote_eph_pages_unsucc_get"] == 1


@pytest.mark.parametrize("kind", STORES)
def test_a_persistent_page_read_with_room_at_home_comes_home(kind: str) -> None:
    tmem = origin_tmem(make_store(kind))
    pool = tmem.new_pool(APP, PERSISTENT)
    version = put(tmem, pool, 7, 0, page(1))
    [shipment] = ship_all(tmem, True, PEER)
    ref = remote_ref(tmem, pool, 7, 0)

    hit = localify(tmem.table, ref, answer(shipment), home=True)

    assert hit == Hit(shipment.page, ref.obj_id, 0, version)
    counters = tmem.counters()
    assert counters["remote_pers_pages_succ_get"] == counters["pers_pages_repatriated"] == 1
    assert counters["remote_pages"] == 0
    # Local again, same version: the peer's copy is released as remotify releases copies.
    assert tmem.get_many_packed(APP, pool, [(7, 0)]) == [hit]
    assert tmem.table.elsewhere.drain() == [RemoteFlush.of(PEER, shipment)]


# -- flushes of remote pages (§A5.6) -----------------------------------------------------------


def remote_object(tmem: Tmem, pool: int, oid: int, nodes: list[int]) -> list[Shipment]:
    """Put one page per entry of `nodes` in object `oid` and ship page i to nodes[i]."""
    persistent = tmem.pool_spec(APP, pool).persistent
    for index in range(len(nodes)):
        put(tmem, pool, oid, index, page(100 * oid + index))
    shipments = take_shipments(tmem.table, persistent, len(nodes), ALL)
    for shipment, node in zip(shipments, nodes, strict=True):
        assert complete_shipments(tmem.table, node, [shipment], [True]) == 1
    return shipments


@pytest.mark.parametrize("kind", STORES)
def test_flushing_a_remote_page_queues_its_flush(kind: str) -> None:
    tmem = origin_tmem(make_store(kind))
    pool = tmem.new_pool(APP, EPHEMERAL)
    shipments = remote_object(tmem, pool, 7, [PEER, OTHER_PEER])

    assert tmem.flush_page(APP, pool, 7, 1)
    assert not tmem.flush_page(APP, pool, 7, 1)
    assert tmem.table.elsewhere.drain() == [
        RemoteFlush(OTHER_PEER, shipments[1].pool_uid, (7, 0, 0), 1, shipments[1].version)
    ]
    assert tmem.counters()["remote_pages"] == 1


@pytest.mark.parametrize("kind", STORES)
def test_flushing_an_object_queues_one_object_flush_per_holder(kind: str) -> None:
    tmem = origin_tmem(make_store(kind))
    pool = tmem.new_pool(APP, PERSISTENT)
    shipments = remote_object(tmem, pool, 7, [OTHER_PEER, PEER, OTHER_PEER])
    put(tmem, pool, 7, 3, page(9))  # and a local page
    uid = shipments[0].pool_uid

    assert tmem.flush_object(APP, pool, 7)
    # Each flush reaches up to the newest copy its holder had: a newer one sent later stays.
    assert tmem.table.elsewhere.drain() == [
        RemoteFlush(PEER, uid, (7, 0, 0), None, shipments[1].version),
        RemoteFlush(OTHER_PEER, uid, (7, 0, 0), None, shipments[2].version),
    ]
    counters = tmem.counters()
    assert counters["remote_pages"] == counters["remote_pers_pages"] == 0
    assert counters["obj_count"] == 0
    assert store_pages(tmem.table.store) == (0, 0)


@pytest.mark.parametrize("kind", STORES)
def test_destroying_a_pool_queues_one_pool_flush_per_holder(kind: str) -> None:
    tmem = origin_tmem(make_store(kind))
    pool = tmem.new_pool(APP, EPHEMERAL)
    kept = tmem.new_pool(APP, EPHEMERAL)
    shipments = remote_object(tmem, pool, 7, [OTHER_PEER])
    remote_object(tmem, pool, 8, [PEER, OTHER_PEER])
    remote_object(tmem, kept, 9, [PEER])
    put(tmem, pool, 10, 0, page(3))

    assert tmem.destroy_pool(APP, pool) == 4
    uid = shipments[0].pool_uid
    assert tmem.table.elsewhere.drain() == [RemoteFlush(PEER, uid), RemoteFlush(OTHER_PEER, uid)]
    assert tmem.counters()["remote_pages"] == 1


@pytest.mark.parametrize("kind", STORES)
def test_a_shared_pool_queues_its_flush_when_the_last_sharer_leaves(kind: str) -> None:
    tmem = origin_tmem(make_store(kind))
    spec = PoolSpec(shared_uuid=uuid.UUID(int=42))
    pool = tmem.new_pool(APP, spec)
    other = tmem.new_pool("other", spec)
    [shipment] = remote_object(tmem, pool, 7, [PEER])

    assert tmem.destroy_pool(APP, pool) == 0
    assert tmem.table.elsewhere.drain() == []
    assert tmem.destroy_pool("other", other) == 1
    assert tmem.table.elsewhere.drain() == [RemoteFlush(PEER, shipment.pool_uid)]


@pytest.mark.parametrize("kind", STORES)
def test_drain_returns_the_flushes_oldest_first_and_empties_the_queue(kind: str) -> None:
    tmem = origin_tmem(make_store(kind))
    pool = tmem.new_pool(APP, PERSISTENT)
    gone = tmem.new_pool(APP, EPHEMERAL)
    [first] = remote_object(tmem, pool, 7, [OTHER_PEER])
    [eighth] = remote_object(tmem, pool, 8, [PEER])
    [last] = remote_object(tmem, gone, 9, [PEER])

    tmem.flush_page(APP, pool, 7, 0)
    tmem.flush_object(APP, pool, 8)
    tmem.destroy_pool(APP, gone)

    assert tmem.table.elsewhere.drain() == [
        RemoteFlush(OTHER_PEER, first.pool_uid, (7, 0, 0), 0, first.version),
        RemoteFlush(PEER, first.pool_uid, (8, 0, 0), None, eighth.version),
        RemoteFlush(PEER, last.pool_uid),
    ]
    assert tmem.table.elsewhere.drain() == []


@pytest.mark.parametrize("kind", STORES)
def test_flushing_local_pages_queues_nothing(kind: str) -> None:
    tmem = origin_tmem(make_store(kind))
    pool = tmem.new_pool(APP, PERSISTENT)
    for oid in (7, 8, 9):
        put(tmem, pool, oid, 0, page(oid))
        put(tmem, pool, oid, 1, page(10 + oid))

    assert tmem.flush_page(APP, pool, 7, 0)
    assert tmem.flush_object(APP, pool, 8)
    put(tmem, pool, 9, 1, page(1))  # a duplicate put of a local page
    assert tmem.destroy_pool(APP, pool) == 3
    assert tmem.table.elsewhere.drain() == []


# -- drop_remote: giving up an ephemeral page ---------------------------------------------------


@pytest.mark.parametrize("kind", STORES)
def test_drop_remote_forgets_the_page_and_queues_exactly_one_page_flush(kind: str) -> None:
    tmem = origin_tmem(make_store(kind))
    pool = tmem.new_pool(APP, EPHEMERAL)
    shipments = remote_object(tmem, pool, 7, [PEER, OTHER_PEER])
    ref = remote_ref(tmem, pool, 7, 0)
    before = tmem.counters()

    assert drop_remote(tmem.table, ref)

    assert ref.version == shipments[0].version
    assert tmem.table.elsewhere.drain() == [
        RemoteFlush(PEER, shipments[0].pool_uid, (7, 0, 0), 0, shipments[0].version)
    ]
    assert tmem.page_version(APP, pool, 7, 0) is None
    assert remote_refs(tmem.table) == [remote_ref(tmem, pool, 7, 1)]
    counters = tmem.counters()
    assert counters["remote_pages"] == 1
    # Giving a page up is neither a get nor a loss.
    assert {name: counters[name] - before[name] for name in REMOTE_COUNTERS} == dict.fromkeys(
        REMOTE_COUNTERS, 0
    )
    assert not drop_remote(tmem.table, ref)  # gone already: nothing more is queued
    assert tmem.table.elsewhere.drain() == []


@pytest.mark.parametrize("kind", STORES)
def test_drop_remote_leaves_a_key_that_changed_alone(kind: str) -> None:
    tmem = origin_tmem(make_store(kind))
    pool = tmem.new_pool(APP, EPHEMERAL)
    for index in range(3):
        put(tmem, pool, 7, index, page(index))
    ship_all(tmem, False, PEER)
    refs = [remote_ref(tmem, pool, 7, index) for index in range(3)]

    tmem.flush_page(APP, pool, 7, 0)
    put(tmem, pool, 7, 2, page(12))
    ship_all(tmem, False, OTHER_PEER)  # index 2 is remote again, with another version
    put(tmem, pool, 7, 1, page(11))  # index 1 is local again
    tmem.table.elsewhere.drain()

    assert [drop_remote(tmem.table, ref) for ref in refs] == [False, False, False]
    assert tmem.table.elsewhere.drain() == []
    assert tmem.page_version(APP, pool, 7, 0) is None
    assert tmem.get(APP, pool, 7, 1, free=False) == page(11)
    assert remote_ref(tmem, pool, 7, 2).node == OTHER_PEER


# -- repatriate --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", STORES)
def test_repatriate_brings_a_persistent_page_home_with_its_version(kind: str) -> None:
    store = make_store(kind)
    tmem = origin_tmem(store)
    pool = tmem.new_pool(APP, PERSISTENT)
    version = put(tmem, pool, 7, 0, page(1))
    [shipment] = ship_all(tmem, True, PEER)
    ref = remote_ref(tmem, pool, 7, 0)
    before = used(store)

    assert repatriate(tmem.table, ref, shipment.page)

    assert tmem.page_version(APP, pool, 7, 0) == version
    assert tmem.get(APP, pool, 7, 0) == page(1)
    assert store_pages(store) == (0, 1)
    assert used(store) == before + page_cost(kind, page(1)) - REMOTE_PAGE_BYTES
    counters = tmem.counters()
    assert counters["pers_pages_repatriated"] == 1
    assert counters["remote_pages"] == counters["remote_pers_pages"] == 0
    assert remote_refs(tmem.table) == []
    assert tmem.table.elsewhere.drain() == [RemoteFlush.of(PEER, shipment)]  # the copy it replaced
    assert not repatriate(tmem.table, ref, shipment.page)  # the handle is gone now
    # Home again, it may be shipped again.
    assert [s.version for s in take_shipments(tmem.table, True, 10, ALL)] == [version]


@pytest.mark.parametrize("kind", STORES)
def test_repatriate_of_an_ephemeral_page_counts_nothing(kind: str) -> None:
    tmem = origin_tmem(make_store(kind))
    pool = tmem.new_pool(APP, EPHEMERAL)
    version = put(tmem, pool, 7, 0, page(1))
    [shipment] = ship_all(tmem, False, PEER)

    assert repatriate(tmem.table, remote_ref(tmem, pool, 7, 0), shipment.page)
    assert tmem.page_version(APP, pool, 7, 0) == version
    assert tmem.counters()["pers_pages_repatriated"] == 0


@pytest.mark.parametrize("kind", STORES)
def test_repatriate_refuses_a_handle_that_changed(kind: str) -> None:
    tmem = origin_tmem(make_store(kind))
    pool = tmem.new_pool(APP, PERSISTENT)
    for index in range(3):
        put(tmem, pool, 7, index, page(index))
    shipments = ship_all(tmem, True, PEER)
    refs = [remote_ref(tmem, pool, 7, index) for index in range(3)]

    tmem.flush_page(APP, pool, 7, 0)
    put(tmem, pool, 7, 2, page(12))
    ship_all(tmem, True, OTHER_PEER)  # index 2 is remote again, with another version
    put(tmem, pool, 7, 1, page(11))  # index 1 is local again

    assert [repatriate(tmem.table, r, s.page) for r, s in zip(refs, shipments, strict=True)] == [
        False,
        False,
        False,
    ]
    assert tmem.page_version(APP, pool, 7, 0) is None
    assert tmem.get(APP, pool, 7, 1) == page(11)
    assert remote_ref(tmem, pool, 7, 2).node == OTHER_PEER
    assert tmem.counters()["pers_pages_repatriated"] == 0


@pytest.mark.parametrize("kind", STORES)
def test_repatriate_refuses_when_the_store_is_full(kind: str) -> None:
    store = fitting_store(kind, remote=1)
    tmem = origin_tmem(store)
    pool = tmem.new_pool(APP, PERSISTENT)
    for index in range(FIT):
        put(tmem, pool, 7, index, page(index))
    [shipment] = ship_all(tmem, True, PEER, max_pages=1)
    put(tmem, pool, 7, FIT, page(FIT))  # takes the room the shipped page left
    assert used(store) == store.counters()["memory_bytes"]  # exactly full
    assert tmem.put(APP, pool, 7, FIT + 1, page(FIT + 1)) == Rejected(RejectReason.NO_SPACE)
    ref = remote_ref(tmem, pool, 7, 0)

    assert not repatriate(tmem.table, ref, shipment.page)
    assert remote_refs(tmem.table) == [ref]
    assert tmem.page_version(APP, pool, 7, 0) == shipment.version
    assert tmem.counters()["pers_pages_repatriated"] == 0

    tmem.flush_page(APP, pool, 7, 5)
    assert repatriate(tmem.table, ref, shipment.page)
    assert tmem.get(APP, pool, 7, 0) == page(0)


# -- remote_refs -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", STORES)
def test_remote_refs_lists_every_remote_page_by_class(kind: str) -> None:
    tmem = origin_tmem(make_store(kind))
    eph = tmem.new_pool(APP, EPHEMERAL)
    pers = tmem.new_pool(APP, PERSISTENT)
    remote_object(tmem, eph, 7, [PEER, OTHER_PEER])
    remote_object(tmem, pers, 8, [OTHER_PEER, PEER, PEER])
    put(tmem, pers, 8, 3, page(1))  # local pages are not listed
    put(tmem, eph, 9, 0, page(2))

    def listed(persistent: bool | None) -> list[tuple[int, tuple[int, int, int], int, bool]]:
        refs = remote_refs(tmem.table, persistent)
        for ref in refs:  # each is the ref a get of that key answers
            assert ref == remote_ref(tmem, pers if ref.persistent else eph, ref.oid[0], ref.index)
        return sorted((r.node, r.oid, r.index, r.persistent) for r in refs)

    eph_refs = [(PEER, (7, 0, 0), 0, False), (OTHER_PEER, (7, 0, 0), 1, False)]
    pers_refs = [
        (PEER, (8, 0, 0), 1, True),
        (PEER, (8, 0, 0), 2, True),
        (OTHER_PEER, (8, 0, 0), 0, True),
    ]
    assert listed(False) == eph_refs
    assert listed(True) == pers_refs
    assert listed(None) == sorted(eph_refs + pers_refs)
    assert len(remote_refs(tmem.table)) == tmem.counters()["remote_pages"] == 5


def test_a_fresh_host_has_no_remote_pages() -> None:
    tmem = origin_tmem(PlainStore(memory=1 << 20))
    assert remote_refs(tmem.table) == []
    assert tmem.table.elsewhere.drain() == []
    assert take_shipments(tmem.table, False, 64, ALL) == []
    assert complete_shipments(tmem.table, PEER, [], []) == 0


def test_packed_pages_travel_unchanged() -> None:
    """A shipment carries the store's own packed bytes: what a peer stores is what came back."""
    store = ZCache(ZcacheConfig(memory=1 << 20))
    tmem = origin_tmem(store)
    pool = tmem.new_pool(APP, PERSISTENT)
    put(tmem, pool, 7, 0, bytes(PAGE_SIZE))  # a same-filled page packs to one byte
    [shipment] = ship_all(tmem, True, PEER)
    assert shipment.page == PackedPage(b"\0", True, PAGE_SIZE)
