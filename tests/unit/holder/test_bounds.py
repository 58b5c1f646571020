"""What a peer can make a holder keep is bounded (`ramster.holder.foreign`, issue 12).

On a real `Tmem` over `ZCache` with no network: the pools and epochs held for peers are charged
to the budget while held (measured against what they really take, with `tracemalloc`) and
released when they go; a pool past the budget, past `max_pools_per_origin`, an epoch past
`max_epochs_per_origin` and an owner record past `max_pools_per_client` are refused with exact
messages; origins do not count against the node's application clients.
"""

from __future__ import annotations

import gc
import tracemalloc
import uuid

import pytest

from ramster.errors import ResourceExhausted
from ramster.holder.epochs import adopt, forget_origin
from ramster.holder.foreign import destroy_foreign_pools, origin_client
from ramster.page import pack_page
from ramster.remote.handles import origin_tmem
from ramster.tmem import PoolSpec, Stored
from ramster.tmem.keys import TmemLimits
from ramster.tmem.pool import FOREIGN_CLIENT_BYTES, FOREIGN_POOL_BYTES, OBJECT_BYTES, PoolRecord
from ramster.zcache import ZCache, ZcacheConfig
from ramster.zcache.store import PAGE_BYTES, SLOT_BYTES
from tests.support.foreign import (
    ORIGIN,
    PAGE_SIZE,
    ForeignPage,
    foreign,
    holder,
    put_foreign_pages,
)

FILLED = pack_page(bytes([0x5A]) * PAGE_SIZE)
"""A same-filled page: its payload is one cached byte, so what it costs is all metadata."""
WIDEST_NAME = "\U0001f600" * 256
"""The costliest client name a record may carry: 256 characters of 4 bytes each."""


def filled(uid: int, version: int = 1) -> ForeignPage:
    return ForeignPage(uid, (uid, 0, 0), 0, version, True, FILLED)


def record(uid: int, client: str) -> PoolRecord:
    """An owner record of a shared pool (its UUID is kept too, the costliest spec)."""
    return PoolRecord(uid, client, 0, PoolSpec(persistent=True, shared_uuid=uuid.UUID(int=uid)))


def test_the_charge_of_held_pools_covers_what_they_take_and_goes_with_them() -> None:
    """Many epochs with many pools, each with the widest owner record and one page: every byte
    they allocate is counted (the charge is an upper bound), and all of it is released again
    by each way pools leave a holder."""
    tmem, store = holder(1 << 30)
    epochs, pools = 64, 64
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for n in range(epochs):
        origin = origin_client(2 + n % 16, f"{n:016x}")
        pages = [filled(uid) for uid in range(1, pools + 1)]
        owners = [record(uid, f"{uid:03d}{WIDEST_NAME}"[:256]) for uid in range(1, pools + 1)]
        assert put_foreign_pages(tmem.table, origin, pages, owners) == [Stored(1)] * pools
    taken = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    charged = store.used_bytes
    page = SLOT_BYTES + PAGE_BYTES + OBJECT_BYTES
    assert charged == epochs * (FOREIGN_CLIENT_BYTES + pools * (FOREIGN_POOL_BYTES + page))
    assert taken <= charged, f"{taken} bytes taken, {charged} charged"

    # Every way pools leave a holder releases their charge: destroyed by their origin, its
    # earlier epochs forgotten, or moved under its new epoch (and then forgotten).
    for n in range(epochs):
        number, epoch = 2 + n % 16, f"{n:016x}"
        if number < 6:
            destroyed = destroy_foreign_pools(
                tmem.table, origin_client(number, epoch), range(1, pools + 1)
            )
            assert destroyed == [True] * pools
    for number in range(6, 18):
        if number >= 10:
            kept = f"{number - 2:016x}"
            assert len(adopt(tmem.table, number, [kept], "f" * 16)) == pools
        forget_origin(tmem.table, number, "")
    assert tmem.table.client_names() == []
    assert store.used_bytes == epochs * pools * SLOT_BYTES  # only the slot table stays


def test_a_pool_past_the_budget_is_refused_and_nothing_is_placed() -> None:
    page = SLOT_BYTES + PAGE_BYTES + OBJECT_BYTES
    tmem, store = holder(1 << 16)
    store.charge((1 << 16) - (FOREIGN_CLIENT_BYTES + FOREIGN_POOL_BYTES + page))  # room for one
    assert put_foreign_pages(tmem.table, ORIGIN, [filled(1)]) == [Stored(1)]
    with pytest.raises(ResourceExhausted) as refused:
        put_foreign_pages(tmem.table, ORIGIN, [filled(2)])
    assert refused.value.message == (
        "no room for pool 2 of peer:2:e2: this node's budget is full of pages that cannot be "
        "evicted"
    )
    assert list(tmem.table.client_pools(ORIGIN)) == [1]
    assert store.used_bytes == store.config.memory


def test_a_held_pool_evicts_ephemeral_pages_as_a_page_would() -> None:
    tmem, store = holder(1 << 20)
    local = tmem.new_pool("app", PoolSpec())
    page = bytes(range(256)) * 16
    n = 0
    while not store.stats.evicted_eph_zpages:
        tmem.put("app", local, n, 0, page)
        n += 1
    assert put_foreign_pages(tmem.table, ORIGIN, [foreign(0, persistent=True)]) == [Stored(1000)]
    assert store.stats.evicted_eph_zpages >= 2
    assert store.used_bytes <= store.config.memory


def test_more_pools_of_one_origin_epoch_than_max_pools_per_origin_are_refused() -> None:
    tmem, _ = holder()
    limits = TmemLimits(max_pools_per_origin=3)
    assert (
        put_foreign_pages(tmem.table, ORIGIN, [filled(1), filled(2)], limits=limits)
        == [Stored(1)] * 2
    )
    with pytest.raises(ResourceExhausted) as refused:
        put_foreign_pages(tmem.table, ORIGIN, [filled(3), filled(4)], limits=limits)
    assert refused.value.message == "peer:2:e2 holds 3 pools here: max_pools_per_origin is 3"
    assert sorted(tmem.table.client_pools(ORIGIN)) == [1, 2, 3]
    assert put_foreign_pages(tmem.table, ORIGIN, [filled(3, version=2)], limits=limits) == [
        Stored(2)
    ]


def test_more_epochs_of_one_origin_number_than_max_epochs_per_origin_are_refused() -> None:
    tmem, _ = holder()
    limits = TmemLimits(max_epochs_per_origin=2)
    for epoch in ("e1", "e2"):
        put_foreign_pages(tmem.table, origin_client(2, epoch), [filled(1)], limits=limits)
    with pytest.raises(ResourceExhausted) as refused:
        put_foreign_pages(tmem.table, origin_client(2, "e3"), [filled(1)], limits=limits)
    assert refused.value.message == (
        "node 2 has pages here under 2 epochs: max_epochs_per_origin is 2 (a node that starts "
        "again takes back or forgets its earlier ones)"
    )
    # Another origin number, and a held epoch, still fit.
    assert put_foreign_pages(tmem.table, origin_client(3, "e3"), [filled(1)], limits=limits) == [
        Stored(1)
    ]
    assert put_foreign_pages(tmem.table, origin_client(2, "e2"), [filled(2)], limits=limits) == [
        Stored(1)
    ]


def test_more_pools_of_one_client_of_an_origin_than_max_pools_per_client_are_refused() -> None:
    tmem, _ = holder()
    limits = TmemLimits(max_pools_per_client=2)
    pages = [filled(uid) for uid in (1, 2, 3)]
    owners = [record(1, "app"), record(2, "app")]
    put_foreign_pages(tmem.table, ORIGIN, pages, owners, limits=limits)
    with pytest.raises(ResourceExhausted) as refused:
        put_foreign_pages(tmem.table, ORIGIN, [filled(3)], [record(3, "app")], limits=limits)
    assert refused.value.message == (
        "client 'app' of peer:2:e2 owns 2 pools here: max_pools_per_client is 2"
    )
    # The records a holder has already are sent again with every put, and stay accepted.
    assert put_foreign_pages(tmem.table, ORIGIN, [filled(1, 2)], owners, limits=limits) == [
        Stored(2)
    ]
    assert put_foreign_pages(tmem.table, ORIGIN, [filled(3)], [record(3, "db")], limits=limits) == [
        Stored(1)
    ]


def test_origins_do_not_count_against_the_application_clients() -> None:
    store = ZCache(ZcacheConfig(memory=1 << 20))
    tmem = origin_tmem(store, TmemLimits(max_clients=1))
    for number in range(2, 6):
        put_foreign_pages(tmem.table, origin_client(number, "e"), [filled(1)])
    assert tmem.new_pool("app", PoolSpec()) == 0
    with pytest.raises(ResourceExhausted) as refused:
        tmem.new_pool("other", PoolSpec())
    assert refused.value.message == "clients 1 reached max_clients 1"
