"""The tmem host (docs/design.md §3, reference §A1): pools, the put/get/flush rules, versions,
counters and the exact error of every refused request.

Most tests run over `PlainStore` with room to spare, so the semantics are seen alone; eviction
and refused puts use a small budget or `ZCache`'s admission. Random sequences of the same
operations against a dict model are in test_tmem_model.py; the stores' own contract is in
tests/contract/test_store_contract.py.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable

import pytest

from ramster.errors import (
    FailedPrecondition,
    InvalidArgument,
    PoolNotFound,
    RamsterError,
    ResourceExhausted,
    Unavailable,
)
from ramster.tmem import (
    INVALID_OID,
    PageStore,
    PageTable,
    PoolSpec,
    Rejected,
    RejectReason,
    Stored,
    Tmem,
    TmemLimits,
)
from ramster.tmem.host import OidLike
from ramster.tmem.keys import owner_name
from ramster.tmem.local import LocalClient
from ramster.tmem.pool import OBJECT_BYTES, PoolRecord
from ramster.zcache import PlainStore, ZCache, ZcacheConfig
from ramster.zcache.plain import PLAIN_PAGE_BYTES

APP = "app"
PEER = "peer"
EPHEMERAL = PoolSpec()
PERSISTENT = PoolSpec(persistent=True)
SHARED = uuid.UUID("6a1c3e52-0b1d-4c1e-9d1f-0123456789ab")
SHARED_EPHEMERAL = PoolSpec(shared_uuid=SHARED)


def page(fill: int, size: int = 4096) -> bytes:
    return bytes([fill]) * size


A, B, C = page(0xA1), page(0xB2), page(0xC3)
INCOMPRESSIBLE = random.Random(7).randbytes(4096)
"""lz4 packs it to more than 4000 bytes: ZCache refuses it in every pool."""


@pytest.fixture
def store() -> PlainStore:
    return PlainStore(memory=1 << 20)


@pytest.fixture
def tmem(store: PlainStore) -> Tmem:
    return Tmem(PageTable(store))


def zcache_tmem() -> tuple[Tmem, ZCache]:
    store = ZCache(ZcacheConfig(memory=1 << 20))
    return Tmem(PageTable(store)), store


def message_of(error: type[RamsterError], call: Callable[[], object]) -> str:
    """The message of the `error` that `call()` raises."""
    with pytest.raises(error) as caught:
        call()
    return caught.value.message


def store_pages(store: PageStore) -> tuple[int, int]:
    counters = store.counters()
    return counters["eph_zpages"], counters["pers_zpages"]


# -- pools -------------------------------------------------------------------------------------


def test_pool_ids_are_the_first_free_slot_of_each_client(tmem: Tmem) -> None:
    assert [tmem.new_pool(APP, EPHEMERAL) for _ in range(3)] == [0, 1, 2]
    assert tmem.new_pool(PEER, PERSISTENT) == 0

    assert tmem.destroy_pool(APP, 1) == 0
    assert tmem.new_pool(APP, PERSISTENT) == 1
    assert tmem.new_pool(APP, EPHEMERAL) == 3
    assert tmem.pool_spec(APP, 1) == PERSISTENT
    assert tmem.counters()["pool_count"] == 5
    assert tmem.counters()["client_count"] == 2


def test_a_client_holds_at_most_16_pools(tmem: Tmem) -> None:
    assert [tmem.new_pool(APP, EPHEMERAL) for _ in range(16)] == list(range(16))

    message = message_of(ResourceExhausted, lambda: tmem.new_pool(APP, EPHEMERAL))
    assert message == "client 'app' holds 16 pools: max_pools_per_client is 16"
    assert tmem.new_pool(PEER, EPHEMERAL) == 0  # the limit is per client

    tmem.destroy_pool(APP, 5)
    assert tmem.new_pool(APP, EPHEMERAL) == 5


def test_max_clients_counts_the_clients_that_hold_pools() -> None:
    tmem = Tmem(
        PageTable(PlainStore(memory=1 << 20)), TmemLimits(max_clients=2, max_pools_per_client=2)
    )
    tmem.new_pool("a", EPHEMERAL)
    tmem.new_pool("b", EPHEMERAL)

    message = message_of(ResourceExhausted, lambda: tmem.new_pool("c", EPHEMERAL))
    assert message == "clients 2 reached max_clients 2"
    assert tmem.new_pool("a", EPHEMERAL) == 1  # a known client is not a new one
    message = message_of(ResourceExhausted, lambda: tmem.new_pool("a", EPHEMERAL))
    assert message == "client 'a' holds 2 pools: max_pools_per_client is 2"

    tmem.destroy_pool("b", 0)  # b holds no pool now: it no longer counts
    assert tmem.new_pool("c", EPHEMERAL) == 0
    assert tmem.counters()["client_count"] == 2


@pytest.mark.parametrize("spec", [EPHEMERAL, SHARED_EPHEMERAL], ids=["private", "shared"])
def test_a_client_name_starting_with_peer_colon_is_refused(tmem: Tmem, spec: PoolSpec) -> None:
    """Such names are the clients of pages held for other nodes (`ramster.holder.foreign`)."""
    message = message_of(InvalidArgument, lambda: tmem.new_pool("peer:2:e2", spec))
    assert message == (
        "client 'peer:2:e2' is invalid: expected a name not starting with 'peer:' (kept for peers)"
    )
    message = message_of(InvalidArgument, lambda: tmem.new_pool("peer:", spec))
    assert message == (
        "client 'peer:' is invalid: expected a name not starting with 'peer:' (kept for peers)"
    )
    counters = tmem.counters()
    assert (counters["client_count"], counters["pool_count"]) == (0, 0)  # no trace left
    assert tmem.new_pool(PEER, spec) == 0  # "peer" alone is an ordinary name
    assert tmem.new_pool("app:peer:2", spec) == 0


def test_pool_uids_start_at_first_pool_uid_and_are_never_reused() -> None:
    assert Tmem(PageTable(PlainStore(memory=1 << 20))).table.next_pool_uid == 1
    tmem = Tmem(PageTable(PlainStore(memory=1 << 20), first_pool_uid=7))
    assert tmem.table.next_pool_uid == 7

    pool = tmem.new_pool(APP, EPHEMERAL)
    tmem.new_pool(APP, SHARED_EPHEMERAL)
    tmem.new_pool(PEER, SHARED_EPHEMERAL)  # joins the shared pool: no new uid
    assert tmem.table.next_pool_uid == 9
    tmem.destroy_pool(APP, pool)
    assert tmem.new_pool(APP, EPHEMERAL) == pool  # the pool id is free again...
    assert tmem.table.next_pool_uid == 10  # ...but its uid is not given twice


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_clients": 0}, "max_clients 0 is invalid: expected an int >= 1"),
        ({"max_pools_per_client": -1}, "max_pools_per_client -1 is invalid: expected an int >= 1"),
        ({"max_clients": 2.5}, "max_clients 2.5 is invalid: expected an int >= 1"),
    ],
)
def test_limits_are_validated(changes: dict[str, object], message: str) -> None:
    assert message_of(InvalidArgument, lambda: TmemLimits(**changes)) == message  # type: ignore[arg-type]


@pytest.mark.parametrize("page_size", [3000, 256, 131072, 0, True])
def test_page_size_must_be_a_power_of_two_in_512_to_65536(page_size: int) -> None:
    expected = f"page_size {page_size!r} is invalid: expected a power of two in 512..65536"
    assert message_of(InvalidArgument, lambda: PoolSpec(page_size=page_size)) == expected
    client = LocalClient(Tmem(PageTable(PlainStore(memory=1 << 20))), APP)
    assert message_of(InvalidArgument, lambda: client.new_pool(page_size=page_size)) == expected


def test_shared_uuid_must_be_a_uuid() -> None:
    message = message_of(InvalidArgument, lambda: PoolSpec(shared_uuid=str(SHARED)))  # type: ignore[arg-type]
    assert message == f"shared_uuid '{SHARED}' is invalid: expected a UUID or None"


@pytest.mark.parametrize("page_size", [512, 65536])
def test_pools_hold_pages_of_their_own_size(tmem: Tmem, page_size: int) -> None:
    pool = tmem.new_pool(APP, PoolSpec(persistent=True, page_size=page_size))
    data = random.Random(page_size).randbytes(page_size)

    assert tmem.put(APP, pool, 1, 0, data) == Stored(1)
    assert tmem.get(APP, pool, 1, 0) == data
    message = message_of(InvalidArgument, lambda: tmem.put(APP, pool, 1, 1, A))
    assert message == f"data length 4096 != pool page_size {page_size}"


# -- shared pools ------------------------------------------------------------------------------


def test_a_shared_pool_is_one_pool_for_every_client_with_its_uuid(tmem: Tmem) -> None:
    app_pool = tmem.new_pool(APP, SHARED_EPHEMERAL)
    tmem.new_pool(PEER, EPHEMERAL)
    peer_pool = tmem.new_pool(PEER, SHARED_EPHEMERAL)
    assert (app_pool, peer_pool) == (0, 1)

    tmem.put(APP, app_pool, 1, 0, A)
    tmem.put(PEER, peer_pool, 1, 1, B)

    assert tmem.get(PEER, peer_pool, 1, 0) == A
    assert tmem.get(APP, app_pool, 1, 1) == B
    assert tmem.get(PEER, 0, 1, 0) is None  # the peer's private pool is another pool
    assert repr(tmem) == "<Tmem clients=2 pools=3 objects=1 pages=2>"


def test_a_shared_uuid_names_one_pool_per_owner_scope(tmem: Tmem) -> None:
    # Clients "SCOPE/LABEL" (an identity's labels, `owner_name`) share a UUID's pool within
    # their scope only: another scope naming the same UUID gets a pool of its own.
    x_a, x_b, y_a = owner_name("client:x", "a"), owner_name("client:x", "b"), "client:y/a"
    x_a_pool, x_b_pool, y_pool = (tmem.new_pool(c, SHARED_EPHEMERAL) for c in (x_a, x_b, y_a))
    tmem.put(x_a, x_a_pool, 1, 0, A)
    assert tmem.get(x_b, x_b_pool, 1, 0) == A
    assert tmem.get(y_a, y_pool, 1, 0) is None
    tmem.put(y_a, y_pool, 1, 0, B)
    assert tmem.get(x_a, x_a_pool, 1, 0) == A
    assert repr(tmem) == "<Tmem clients=3 pools=3 objects=2 pages=2>"
    assert tmem.destroy_pool(y_a, y_pool) == 1
    assert tmem.destroy_pool(x_a, x_a_pool) == 0  # x's other label still shares it
    assert tmem.get(x_b, x_b_pool, 1, 0) == A


def test_a_recovered_shared_pool_goes_back_to_its_owners_scope(tmem: Tmem) -> None:
    x_a, y_a = owner_name("client:x", "a"), owner_name("client:y", "a")
    recovered = tmem.install_recovered(PoolRecord(7, x_a, 0, SHARED_EPHEMERAL))
    assert recovered is not None
    assert (
        tmem.install_recovered(PoolRecord(8, owner_name("client:x", "b"), 0, SHARED_EPHEMERAL))
        is None
    )
    y_pool = tmem.new_pool(y_a, SHARED_EPHEMERAL)
    assert tmem.table.pool(y_a, y_pool) is not recovered
    x_pool = tmem.new_pool(x_a, SHARED_EPHEMERAL)
    assert tmem.table.pool(x_a, x_pool) is recovered


def test_a_shared_ephemeral_get_keeps_the_page_unless_free_is_true(tmem: Tmem) -> None:
    app_pool = tmem.new_pool(APP, SHARED_EPHEMERAL)
    peer_pool = tmem.new_pool(PEER, SHARED_EPHEMERAL)
    tmem.put(APP, app_pool, 1, 0, A)

    assert tmem.get(APP, app_pool, 1, 0) == A
    assert tmem.get(PEER, peer_pool, 1, 0) == A
    assert tmem.get(PEER, peer_pool, 1, 0, free=True) == A
    assert tmem.get(APP, app_pool, 1, 0) is None


def test_destroy_by_one_sharer_keeps_the_pages_for_the_others(
    tmem: Tmem, store: PlainStore
) -> None:
    app_pool = tmem.new_pool(APP, SHARED_EPHEMERAL)
    peer_pool = tmem.new_pool(PEER, SHARED_EPHEMERAL)
    tmem.put(APP, app_pool, 1, 0, A)
    tmem.put(APP, app_pool, 2, 0, B)

    assert tmem.destroy_pool(APP, app_pool) == 0
    assert tmem.get(PEER, peer_pool, 1, 0) == A
    assert message_of(PoolNotFound, lambda: tmem.get(APP, app_pool, 1, 0)) == (
        "pool_id 0 does not exist for client 'app'"
    )

    assert tmem.destroy_pool(PEER, peer_pool) == 2
    assert store_pages(store) == (0, 0)
    again = tmem.new_pool(APP, SHARED_EPHEMERAL)  # the uuid names a new, empty pool
    assert tmem.get(APP, again, 1, 0) is None


def test_a_shared_pool_of_another_spec_is_refused_and_leaves_no_trace(tmem: Tmem) -> None:
    tmem.new_pool(APP, SHARED_EPHEMERAL)
    want = PoolSpec(persistent=True, shared_uuid=SHARED)

    message = message_of(FailedPrecondition, lambda: tmem.new_pool(PEER, want))
    assert message == (
        f"shared pool {SHARED} is ephemeral shared {SHARED} page_size=4096, "
        f"not persistent shared {SHARED} page_size=4096"
    )
    bigger = PoolSpec(shared_uuid=SHARED, page_size=8192)
    message = message_of(FailedPrecondition, lambda: tmem.new_pool(APP, bigger))
    assert message == (
        f"shared pool {SHARED} is ephemeral shared {SHARED} page_size=4096, "
        f"not ephemeral shared {SHARED} page_size=8192"
    )
    counters = tmem.counters()
    assert (counters["client_count"], counters["pool_count"]) == (1, 1)
    assert tmem.new_pool(APP, EPHEMERAL) == 1


# -- get rules ---------------------------------------------------------------------------------


def test_a_private_ephemeral_get_is_exclusive(tmem: Tmem, store: PlainStore) -> None:
    pool = tmem.new_pool(APP, EPHEMERAL)
    tmem.put(APP, pool, 1, 0, A)

    assert tmem.get(APP, pool, 1, 0) == A
    assert tmem.get(APP, pool, 1, 0) is None
    assert tmem.page_version(APP, pool, 1, 0) is None
    assert tmem.counters()["obj_count"] == 0
    assert store_pages(store) == (0, 0)


def test_a_private_ephemeral_get_with_free_false_keeps_the_page(tmem: Tmem) -> None:
    pool = tmem.new_pool(APP, EPHEMERAL)
    tmem.put(APP, pool, 1, 0, A)

    assert tmem.get(APP, pool, 1, 0, free=False) == A
    assert tmem.get(APP, pool, 1, 0, free=False) == A
    assert tmem.get(APP, pool, 1, 0) == A
    assert tmem.get(APP, pool, 1, 0) is None


def test_a_persistent_get_keeps_the_page_unless_free_is_true(tmem: Tmem, store: PlainStore) -> None:
    pool = tmem.new_pool(APP, PERSISTENT)
    tmem.put(APP, pool, 1, 0, A)

    assert tmem.get(APP, pool, 1, 0) == A
    assert tmem.get(APP, pool, 1, 0, free=False) == A
    assert tmem.get(APP, pool, 1, 0, free=True) == A
    assert tmem.get(APP, pool, 1, 0) is None
    assert store_pages(store) == (0, 0)


def test_once_a_get_misses_later_gets_miss_until_a_new_put(tmem: Tmem) -> None:
    pool = tmem.new_pool(APP, PERSISTENT)
    tmem.put(APP, pool, 1, 0, A)
    tmem.get(APP, pool, 1, 0, free=True)

    assert [tmem.get(APP, pool, 1, 0, free) for free in (None, False, True, None)] == [None] * 4
    tmem.put(APP, pool, 1, 0, B)
    assert tmem.get(APP, pool, 1, 0) == B


# -- puts and versions -------------------------------------------------------------------------


def test_every_put_gets_a_new_higher_version(tmem: Tmem) -> None:
    app_pool = tmem.new_pool(APP, PERSISTENT)
    peer_pool = tmem.new_pool(PEER, EPHEMERAL)

    assert tmem.put(APP, app_pool, 1, 0, A) == Stored(1)
    assert tmem.put(PEER, peer_pool, 1, 0, A) == Stored(2)
    assert tmem.put(APP, app_pool, 1, 1, A) == Stored(3)
    assert tmem.page_version(APP, app_pool, 1, 0) == 1
    assert tmem.page_version(APP, app_pool, 1, 1) == 3
    assert tmem.page_version(APP, app_pool, 2, 0) is None


def test_a_duplicate_put_replaces_the_page_and_its_version(tmem: Tmem, store: PlainStore) -> None:
    pool = tmem.new_pool(APP, PERSISTENT)
    tmem.put(APP, pool, 1, 0, A)

    assert tmem.put(APP, pool, 1, 0, B) == Stored(2)

    assert tmem.page_version(APP, pool, 1, 0) == 2
    assert tmem.get(APP, pool, 1, 0) == B
    assert store_pages(store) == (0, 1)
    assert repr(tmem) == "<Tmem clients=1 pools=1 objects=1 pages=1>"


@pytest.mark.parametrize("spec", [EPHEMERAL, PERSISTENT], ids=["ephemeral", "persistent"])
def test_a_failed_duplicate_put_leaves_the_key_absent(spec: PoolSpec) -> None:
    tmem, store = zcache_tmem()
    pool = tmem.new_pool(APP, spec)
    tmem.put(APP, pool, 1, 0, A)
    tmem.put(APP, pool, 1, 1, B)

    assert tmem.put(APP, pool, 1, 0, INCOMPRESSIBLE) == Rejected(RejectReason.COMPRESS_POOR)

    assert tmem.page_version(APP, pool, 1, 0) is None
    assert tmem.get(APP, pool, 1, 0, free=False) is None  # never the stale page A
    assert tmem.get(APP, pool, 1, 1, free=False) == B
    assert store_pages(store) == ((1, 0) if spec is EPHEMERAL else (0, 1))
    assert tmem.counters()["obj_count"] == 1


def test_a_refused_put_of_a_new_object_leaves_nothing_behind() -> None:
    tmem, store = zcache_tmem()
    pool = tmem.new_pool(APP, PERSISTENT)
    assert tmem.put(APP, pool, 1, 0, INCOMPRESSIBLE) == Rejected(RejectReason.COMPRESS_POOR)

    assert tmem.counters()["obj_count"] == 0
    assert store.used_bytes == 0  # the object's charge is given back
    assert tmem.put(APP, pool, 1, 0, A) == Stored(2)  # a refused put used version 1


# -- flushes and destroy -----------------------------------------------------------------------


def test_flush_page_reports_whether_it_removed_a_page(tmem: Tmem) -> None:
    pool = tmem.new_pool(APP, PERSISTENT)
    tmem.put(APP, pool, 1, 0, A)
    tmem.put(APP, pool, 1, 1, B)

    assert tmem.flush_page(APP, pool, 1, 0) is True
    assert tmem.flush_page(APP, pool, 1, 0) is False
    assert tmem.flush_page(APP, pool, 9, 0) is False
    assert tmem.get(APP, pool, 1, 0) is None
    assert tmem.get(APP, pool, 1, 1) == B
    counters = tmem.counters()
    assert (counters["flush_total"], counters["flush_found"], counters["obj_count"]) == (3, 1, 1)

    assert tmem.flush_page(APP, pool, 1, 1) is True
    assert tmem.counters()["obj_count"] == 0


def test_flush_object_removes_every_page_of_the_object(tmem: Tmem, store: PlainStore) -> None:
    pool = tmem.new_pool(APP, PERSISTENT)
    for index in (0, 1, 7):
        tmem.put(APP, pool, (1, 2, 3), index, A)
    tmem.put(APP, pool, 1, 0, B)

    assert tmem.flush_object(APP, pool, (1, 2, 3)) is True
    assert tmem.flush_object(APP, pool, (1, 2, 3)) is False
    assert [tmem.get(APP, pool, (1, 2, 3), index) for index in (0, 1, 7)] == [None] * 3
    assert tmem.get(APP, pool, 1, 0) == B
    counters = tmem.counters()
    assert (counters["flobj_total"], counters["flobj_found"], counters["obj_count"]) == (2, 1, 1)
    assert store_pages(store) == (0, 1)


def test_destroy_pool_returns_the_pages_it_flushed_and_forgets_the_pool(
    tmem: Tmem, store: PlainStore
) -> None:
    pool = tmem.new_pool(APP, PERSISTENT)
    other = tmem.new_pool(APP, EPHEMERAL)
    for oid, index in [(1, 0), (1, 1), (2, 0)]:
        tmem.put(APP, pool, oid, index, A)
    tmem.put(APP, other, 1, 0, C)

    assert tmem.destroy_pool(APP, pool) == 3

    assert message_of(PoolNotFound, lambda: tmem.put(APP, pool, 1, 0, A)) == (
        "pool_id 0 does not exist for client 'app'"
    )
    assert message_of(PoolNotFound, lambda: tmem.destroy_pool(APP, pool)) == (
        "pool_id 0 does not exist for client 'app'"
    )
    assert tmem.get(APP, other, 1, 0) == C
    assert tmem.destroy_pool(APP, other) == 0  # the get above took its one page
    counters = tmem.counters()
    assert (counters["obj_count"], counters["obj_count_max"], counters["pool_count"]) == (0, 3, 0)
    assert store.counters()["used_bytes"] == 0  # pages and objects all given back


def test_obj_count_follows_objects_with_pages(tmem: Tmem) -> None:
    pool = tmem.new_pool(APP, EPHEMERAL)
    tmem.put(APP, pool, 1, 0, A)
    tmem.put(APP, pool, 1, 1, A)
    tmem.put(APP, pool, 2, 0, A)
    assert tmem.counters()["obj_count"] == 2

    tmem.get(APP, pool, 1, 0)
    assert tmem.counters()["obj_count"] == 2
    tmem.get(APP, pool, 1, 1)
    tmem.flush_page(APP, pool, 2, 0)
    counters = tmem.counters()
    assert (counters["obj_count"], counters["obj_count_max"]) == (0, 2)


# -- eviction ----------------------------------------------------------------------------------


def test_eviction_makes_keys_absent_and_drops_emptied_objects() -> None:
    page_cost = 4096 + PLAIN_PAGE_BYTES
    store = PlainStore(memory=3 * page_cost + 2 * OBJECT_BYTES)
    tmem = Tmem(PageTable(store))
    pool = tmem.new_pool(APP, EPHEMERAL)
    persistent = tmem.new_pool(APP, PERSISTENT)
    tmem.put(APP, pool, 1, 0, A)
    tmem.put(APP, pool, 2, 0, B)
    tmem.put(APP, pool, 2, 1, C)
    assert store.counters()["used_bytes"] == store.memory

    assert tmem.put(APP, pool, 2, 2, A) == Stored(4)  # evicts (1, 0), the oldest

    assert tmem.get(APP, pool, 1, 0) is None
    assert tmem.counters()["obj_count"] == 1
    assert [tmem.get(APP, pool, 2, index, free=False) for index in (0, 1, 2)] == [B, C, A]
    assert store.counters()["evicted_eph_zpages"] == 1
    assert store.counters()["used_bytes"] == store.memory - OBJECT_BYTES

    # A persistent put may eat ephemeral pages; one that cannot fit at all is refused.
    assert tmem.put(APP, persistent, 2, 0, A) == Stored(5)  # evicts (2, 0) of the other pool
    assert tmem.put(APP, persistent, 2, 1, A) == Stored(6)
    assert tmem.put(APP, persistent, 2, 2, A) == Stored(7)
    assert tmem.put(APP, persistent, 2, 3, A) == Rejected(RejectReason.NO_SPACE)
    assert tmem.get(APP, persistent, 2, 3) is None
    assert [tmem.get(APP, persistent, 2, index) for index in (0, 1, 2)] == [A, A, A]
    assert [tmem.get(APP, pool, 2, index) for index in (0, 1, 2)] == [None] * 3
    assert tmem.counters()["obj_count"] == 1


def test_a_page_put_again_that_evicts_pages_of_its_own_object_keeps_its_key() -> None:
    tmem, store = zcache_tmem()
    pool = tmem.new_pool(APP, EPHEMERAL)

    def medium(n: int) -> bytes:  # about 512 bytes packed
        return random.Random(n).randbytes(512) + bytes(3584)

    n = 0
    while (1 << 20) - store.used_bytes >= 1024:  # zcache_tmem's memory
        assert tmem.put(APP, pool, 1, n, medium(n)) == Stored(n + 1)
        n += 1
    again = n // 2
    big = random.Random(-1).randbytes(2900) + bytes(1196)  # about 2.9 KB packed

    assert tmem.put(APP, pool, 1, again, big) == Stored(n + 1)

    evicted = store.counters()["evicted_eph_zpages"]
    assert 2 <= evicted < again  # the oldest pages made room, not the key put again
    expected = [None] * evicted + [medium(i) for i in range(evicted, n)]
    expected[again] = big
    assert [tmem.get(APP, pool, 1, i, free=False) for i in range(n)] == expected
    assert repr(tmem) == f"<Tmem clients=1 pools=1 objects=1 pages={n - evicted}>"


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [4095, 4097, 0])
def test_a_page_of_the_wrong_length_is_refused(tmem: Tmem, length: int) -> None:
    pool = tmem.new_pool(APP, EPHEMERAL)
    message = message_of(InvalidArgument, lambda: tmem.put(APP, pool, 1, 0, bytes(length)))
    assert message == f"data length {length} != pool page_size 4096"
    assert tmem.put(APP, pool, 1, 0, A) == Stored(1)  # a refused request uses no version


BAD_OIDS = [
    (-1, "oid -1 is invalid: expected words in 0..2**64-1"),
    (2**64, "oid 18446744073709551616 is invalid: expected words in 0..2**64-1"),
    ((1, -1, 0), "oid (1, -1, 0) is invalid: expected words in 0..2**64-1"),
    ((1, 2.0, 3), "oid (1, 2.0, 3) is invalid: expected words in 0..2**64-1"),
    ((1, 2), "oid (1, 2) is invalid: expected an int or a tuple of three ints"),
    ([1, 2, 3], "oid [1, 2, 3] is invalid: expected an int or a tuple of three ints"),
    ("7", "oid '7' is invalid: expected an int or a tuple of three ints"),
    (True, "oid True is invalid: expected an int or a tuple of three ints"),
    (
        INVALID_OID,
        f"oid {INVALID_OID} is invalid: expected not the reserved all-ones oid",
    ),
]


@pytest.mark.parametrize(("oid", "message"), BAD_OIDS, ids=[repr(oid) for oid, _ in BAD_OIDS])
def test_a_bad_oid_is_refused_by_every_operation(tmem: Tmem, oid: object, message: str) -> None:
    pool = tmem.new_pool(APP, PERSISTENT)
    calls: list[Callable[[], object]] = [
        lambda: tmem.put(APP, pool, oid, 0, A),  # type: ignore[arg-type]
        lambda: tmem.get(APP, pool, oid, 0),  # type: ignore[arg-type]
        lambda: tmem.flush_page(APP, pool, oid, 0),  # type: ignore[arg-type]
        lambda: tmem.flush_object(APP, pool, oid),  # type: ignore[arg-type]
        lambda: tmem.page_version(APP, pool, oid, 0),  # type: ignore[arg-type]
    ]
    assert [message_of(InvalidArgument, call) for call in calls] == [message] * len(calls)


def test_the_largest_oids_and_indices_are_keys(tmem: Tmem) -> None:
    pool = tmem.new_pool(APP, PERSISTENT)
    top = 2**64 - 1
    keys: list[tuple[OidLike, int]] = [(top, 2**32 - 1), ((top, top, top - 1), 0), ((0, 0, 0), 0)]
    for oid, index in keys:
        assert isinstance(tmem.put(APP, pool, oid, index, A), Stored)
    assert [tmem.get(APP, pool, oid, index) for oid, index in keys] == [A] * 3
    assert tmem.get(APP, pool, 0, 0) == A  # the int 0 is the oid (0, 0, 0)


@pytest.mark.parametrize("index", [-1, 2**32, True, 1.0, "1"])
def test_a_bad_index_is_refused_by_every_operation(tmem: Tmem, index: object) -> None:
    pool = tmem.new_pool(APP, PERSISTENT)
    message = f"index {index!r} is invalid: expected an int in 0..2**32-1"
    calls: list[Callable[[], object]] = [
        lambda: tmem.put(APP, pool, 1, index, A),  # type: ignore[arg-type]
        lambda: tmem.get(APP, pool, 1, index),  # type: ignore[arg-type]
        lambda: tmem.flush_page(APP, pool, 1, index),  # type: ignore[arg-type]
        lambda: tmem.page_version(APP, pool, 1, index),  # type: ignore[arg-type]
    ]
    assert [message_of(InvalidArgument, call) for call in calls] == [message] * len(calls)


def test_a_pool_id_must_name_one_of_the_clients_pools(tmem: Tmem) -> None:
    tmem.new_pool(APP, EPHEMERAL)

    assert message_of(InvalidArgument, lambda: tmem.get(APP, -1, 1, 0)) == (
        "pool_id -1 is invalid: expected an int >= 0"
    )
    assert message_of(PoolNotFound, lambda: tmem.get(APP, 7, 1, 0)) == (
        "pool_id 7 does not exist for client 'app'"
    )
    assert message_of(PoolNotFound, lambda: tmem.flush_object(PEER, 0, 1)) == (
        "pool_id 0 does not exist for client 'peer'"
    )
    assert message_of(InvalidArgument, lambda: tmem.destroy_pool(PEER, -3)) == (
        "pool_id -3 is invalid: expected an int >= 0"
    )


def test_errors_say_how_they_travel_and_whether_to_retry() -> None:
    assert repr(PoolNotFound("pool_id 7 does not exist")) == (
        "PoolNotFound('pool_id 7 does not exist')"
    )
    assert str(InvalidArgument.field("index", -1, "an int")) == (
        "index -1 is invalid: expected an int"
    )
    assert [e.retriable for e in (InvalidArgument, PoolNotFound, ResourceExhausted)] == [False] * 3
    assert Unavailable.retriable is True


# -- batches -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ((2, 2**32, A), "pages[3].index 4294967296 is invalid: expected an int in 0..2**32-1"),
        ((2, 0, bytes(10)), "pages[3].data length 10 != pool page_size 4096"),
        (
            (INVALID_OID, 0, A),
            f"pages[3].oid {INVALID_OID} is invalid: expected not the reserved all-ones oid",
        ),
    ],
    ids=["index", "data", "oid"],
)
def test_put_many_validates_every_page_before_storing_any(
    tmem: Tmem, store: PlainStore, bad: tuple[object, int, bytes], message: str
) -> None:
    pool = tmem.new_pool(APP, PERSISTENT)
    pages = [(1, 0, A), (1, 1, B), (2, 0, C), bad]

    assert message_of(InvalidArgument, lambda: tmem.put_many(APP, pool, pages)) == message  # type: ignore[arg-type]

    assert tmem.get_many(APP, pool, [(1, 0), (1, 1), (2, 0)]) == [None] * 3
    assert store_pages(store) == (0, 0)
    assert tmem.counters()["obj_count"] == 0
    assert tmem.put(APP, pool, 1, 0, A) == Stored(1)


def test_put_many_and_get_many_answer_page_by_page() -> None:
    tmem, _ = zcache_tmem()
    pool = tmem.new_pool(APP, PERSISTENT)

    outcomes = tmem.put_many(APP, pool, [(1, 0, A), (1, 1, INCOMPRESSIBLE), ((0, 0, 9), 5, C)])

    assert outcomes == [Stored(1), Rejected(RejectReason.COMPRESS_POOR), Stored(3)]
    keys: list[tuple[OidLike, int]] = [(1, 0), (1, 1), ((0, 0, 9), 5)]
    assert tmem.get_many(APP, pool, keys) == [A, None, C]
    assert tmem.get_many(APP, pool, keys, free=True) == [A, None, C]
    assert tmem.get_many(APP, pool, keys) == [None] * 3
    message = message_of(InvalidArgument, lambda: tmem.get_many(APP, pool, [(1, 0), (1, -1)]))
    assert message == "keys[1].index -1 is invalid: expected an int in 0..2**32-1"


# -- repr and the in-process client ------------------------------------------------------------


def test_repr_counts_clients_pools_objects_and_pages(tmem: Tmem) -> None:
    assert repr(tmem) == "<Tmem clients=0 pools=0 objects=0 pages=0>"
    pool = tmem.new_pool(APP, PERSISTENT)
    tmem.new_pool(APP, SHARED_EPHEMERAL)
    tmem.new_pool(PEER, SHARED_EPHEMERAL)
    tmem.put(APP, pool, 1, 0, A)
    tmem.put(APP, pool, 1, 1, A)
    tmem.put(PEER, 0, 2, 0, A)

    assert repr(tmem) == "<Tmem clients=2 pools=3 objects=2 pages=3>"


def test_local_client_is_one_clients_view_of_the_host() -> None:
    tmem, _ = zcache_tmem()
    app, peer = LocalClient(tmem, APP), LocalClient(tmem, PEER)
    swap = app.new_pool(persistent=True)
    cache = app.new_pool(shared_uuid=SHARED)
    assert peer.new_pool(shared_uuid=SHARED) == 0
    assert repr(app) == "<LocalClient 'app' of <Tmem clients=2 pools=3 objects=0 pages=0>>"

    assert app.put(swap, 1, 0, A) is True
    assert app.put(swap, 1, 1, INCOMPRESSIBLE) is False
    assert app.get(swap, 1, 0) == A
    assert app.get(swap, 1, 0, free=True) == A
    assert app.get(swap, 1, 0) is None

    assert app.put(cache, 5, 0, B) is True
    assert peer.get(0, 5, 0) == B
    assert app.flush_page(cache, 5, 0) is True
    assert peer.get(0, 5, 0) is None
    assert peer.put(0, 5, 1, C) is True
    assert app.flush_object(cache, 5) is True
    assert app.flush_object(cache, 5) is False

    app.destroy_pool(cache)
    assert message_of(PoolNotFound, lambda: app.get(cache, 5, 1)) == (
        "pool_id 1 does not exist for client 'app'"
    )
    assert peer.get(0, 5, 1) is None
