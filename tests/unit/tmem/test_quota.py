"""Per-identity quotas in the tmem core (`ramster.tmem.quota`): what each owner scope's pages
take on a node, counted at every change of a pool's pages (put, overwrite, flush, flush object,
get that frees, destroy, eviction, remotified pages), and the put of a new key past the quota
refused per page while overwrites and other identities go on.

Over `PlainStore` with room to spare unless a test needs eviction, and over `origin_tmem` for
pages kept on peers. The quota's path through the node (params, Admin, the wire) is tested in
tests/unit/test_backend.py and tests/integration/test_quotas.py.
"""

from __future__ import annotations

import uuid

from ramster.holder.foreign import origin_client
from ramster.page import pack_page
from ramster.remote.handles import origin_tmem
from ramster.remote.restore import restore
from ramster.remote.shipping import complete_shipments, take_shipments
from ramster.tmem import PageTable, PoolSpec, Rejected, RejectReason, Stored, Tmem
from ramster.tmem.keys import EXPORT_PREFIX, owner_name
from ramster.tmem.pool import OBJECT_BYTES, PoolRecord
from ramster.tmem.quota import Account, Quotas
from ramster.zcache import PlainStore
from ramster.zcache.plain import PLAIN_PAGE_BYTES
from tests.support.foreign import ForeignPage, put_foreign_pages

ALICE, BOB = "client:alice", "client:bob"
ALICE_SWAP, ALICE_CACHE, BOB_SWAP = (
    owner_name(ALICE, "swap"),
    owner_name(ALICE, "cache"),
    owner_name(BOB, "swap"),
)
PAGE = 4096
QUOTA = Rejected(RejectReason.QUOTA)
SHARED = uuid.UUID("6a1c3e52-0b1d-4c1e-9d1f-0123456789ab")


def page(fill: int, size: int = PAGE) -> bytes:
    return bytes([fill]) * size


def host(quotas: Quotas, memory: int = 1 << 22) -> Tmem:
    tmem = Tmem(PageTable(PlainStore(memory=memory)))
    tmem.table.accounts.configure(quotas)
    return tmem


def usage(tmem: Tmem) -> dict[str, tuple[int, int, int, int]]:
    """Each account by scope: (pages, bytes used, quota, puts refused)."""
    return {a.scope: (a.pages, a.used, a.quota, a.refused) for a in tmem.table.accounts}


def test_a_new_key_past_the_quota_is_refused_and_an_overwrite_is_not() -> None:
    tmem = host(Quotas(default=3 * PAGE))
    pool = tmem.new_pool(ALICE_SWAP, PoolSpec(persistent=True))
    outcomes = tmem.put_many(ALICE_SWAP, pool, [(1, index, page(index)) for index in range(5)])

    assert outcomes == [Stored(1), Stored(2), Stored(3), QUOTA, QUOTA]
    assert usage(tmem) == {ALICE: (3, 3 * PAGE, 3 * PAGE, 2)}
    assert tmem.counters()["put_quota"] == 2
    # A page replacing another needs no more room, even at the quota.
    assert tmem.put(ALICE_SWAP, pool, 1, 0, page(9)) == Stored(4)
    assert [tmem.get(ALICE_SWAP, pool, 1, index, free=False) for index in range(5)] == [
        page(9), page(1), page(2), None, None,
    ]  # fmt: skip
    # A refused put on a new object leaves no object behind.
    assert tmem.put(ALICE_SWAP, pool, 2, 0, page(1)) == QUOTA
    assert tmem.counters()["obj_count"] == 1
    assert usage(tmem) == {ALICE: (3, 3 * PAGE, 3 * PAGE, 3)}


def test_the_quota_is_the_identitys_over_its_clients_and_pools_and_not_another_identitys() -> None:
    tmem = host(Quotas(default=2 * PAGE, by_identity={BOB: 4 * PAGE}))
    swap = tmem.new_pool(ALICE_SWAP, PoolSpec(persistent=True))
    cache = tmem.new_pool(ALICE_CACHE, PoolSpec())
    bob = tmem.new_pool(BOB_SWAP, PoolSpec(persistent=True))

    assert tmem.put(ALICE_SWAP, swap, 1, 0, page(1)) == Stored(1)
    assert tmem.put(ALICE_CACHE, cache, 1, 0, page(2)) == Stored(2)
    assert tmem.put(ALICE_CACHE, cache, 1, 1, page(3)) == QUOTA
    assert tmem.put(ALICE_SWAP, swap, 1, 1, page(3)) == QUOTA
    assert tmem.put_many(BOB_SWAP, bob, [(1, index, page(index)) for index in range(4)]) == [
        Stored(3), Stored(4), Stored(5), Stored(6),
    ]  # fmt: skip
    assert usage(tmem) == {ALICE: (2, 2 * PAGE, 2 * PAGE, 2), BOB: (4, 4 * PAGE, 4 * PAGE, 0)}


def test_flushes_gets_that_free_and_destroy_give_the_room_back() -> None:
    tmem = host(Quotas(default=4 * PAGE))
    swap = tmem.new_pool(ALICE_SWAP, PoolSpec(persistent=True))
    cache = tmem.new_pool(ALICE_CACHE, PoolSpec())
    tmem.put_many(ALICE_SWAP, swap, [(1, 0, page(1)), (1, 1, page(2)), (2, 0, page(3))])
    tmem.put(ALICE_CACHE, cache, 1, 0, page(4))
    assert usage(tmem) == {ALICE: (4, 4 * PAGE, 4 * PAGE, 0)}

    assert tmem.flush_page(ALICE_SWAP, swap, 1, 0)
    assert usage(tmem)[ALICE][:2] == (3, 3 * PAGE)
    assert tmem.get(ALICE_CACHE, cache, 1, 0) == page(4)  # a private ephemeral get frees
    assert usage(tmem)[ALICE][:2] == (2, 2 * PAGE)
    assert tmem.flush_object(ALICE_SWAP, swap, 1)
    assert usage(tmem)[ALICE][:2] == (1, PAGE)
    assert tmem.put_many(ALICE_CACHE, cache, [(5, index, page(5)) for index in range(4)]) == [
        Stored(5), Stored(6), Stored(7), QUOTA,
    ]  # fmt: skip
    assert tmem.destroy_pool(ALICE_CACHE, cache) == 3
    assert usage(tmem) == {ALICE: (1, PAGE, 4 * PAGE, 1)}
    # The account goes with the identity's last pool.
    assert tmem.destroy_pool(ALICE_SWAP, swap) == 1
    assert usage(tmem) == {}


def test_pages_count_at_their_page_size_not_their_compressed_size() -> None:
    tmem = host(Quotas(default=3 * 512))
    pool = tmem.new_pool(ALICE_SWAP, PoolSpec(persistent=True, page_size=512))
    outcomes = tmem.put_many(ALICE_SWAP, pool, [(1, index, bytes(512)) for index in range(4)])
    assert outcomes == [Stored(1), Stored(2), Stored(3), QUOTA]
    assert usage(tmem) == {ALICE: (3, 3 * 512, 3 * 512, 1)}


def test_a_lower_quota_keeps_the_pages_stored_and_refuses_new_keys_only() -> None:
    tmem = host(Quotas())
    pool = tmem.new_pool(ALICE_SWAP, PoolSpec(persistent=True))
    tmem.put_many(ALICE_SWAP, pool, [(1, index, page(index)) for index in range(4)])
    assert usage(tmem) == {ALICE: (4, 4 * PAGE, 0, 0)}

    tmem.table.accounts.configure(Quotas(default=2 * PAGE))
    assert usage(tmem) == {ALICE: (4, 4 * PAGE, 2 * PAGE, 0)}
    assert tmem.put(ALICE_SWAP, pool, 1, 4, page(4)) == QUOTA
    assert tmem.put(ALICE_SWAP, pool, 1, 3, page(7)) == Stored(5)
    assert tmem.flush_many(ALICE_SWAP, pool, [(1, 0), (1, 1)]) == [True, True]
    assert tmem.put(ALICE_SWAP, pool, 1, 4, page(4)) == QUOTA  # 2 pages: at the quota
    assert tmem.flush_page(ALICE_SWAP, pool, 1, 2)
    assert tmem.put(ALICE_SWAP, pool, 1, 4, page(4)) == Stored(6)


def test_a_quota_set_for_an_identity_overrides_the_default_and_unlimited_exempts_it() -> None:
    quotas = Quotas(default=PAGE).with_quota(ALICE, 0).with_quota(BOB, 2 * PAGE)
    assert (quotas.of(ALICE), quotas.of(BOB), quotas.of("admin:carol")) == (0, 2 * PAGE, PAGE)
    assert quotas.without(BOB).of(BOB) == PAGE
    tmem = host(quotas)
    pool = tmem.new_pool(ALICE_SWAP, PoolSpec(persistent=True))
    outcomes = tmem.put_many(ALICE_SWAP, pool, [(1, index, page(1)) for index in range(100)])
    assert outcomes == [Stored(version) for version in range(1, 101)]
    assert usage(tmem) == {ALICE: (100, 100 * PAGE, 0, 0)}


def test_evicted_ephemeral_pages_leave_their_account() -> None:
    page_cost = PAGE + PLAIN_PAGE_BYTES
    tmem = host(Quotas(default=10 * PAGE), memory=3 * page_cost + 2 * OBJECT_BYTES)
    cache = tmem.new_pool(ALICE_CACHE, PoolSpec())
    swap = tmem.new_pool(BOB_SWAP, PoolSpec(persistent=True))
    tmem.put_many(ALICE_CACHE, cache, [(1, index, page(index)) for index in range(3)])
    assert usage(tmem)[ALICE][:2] == (3, 3 * PAGE)

    assert tmem.put(BOB_SWAP, swap, 1, 0, page(9)) == Stored(4)  # evicts Alice's oldest page
    assert tmem.put(ALICE_CACHE, cache, 1, 3, page(3)) == Stored(5)  # evicts her next one
    assert tmem.table.store.counters()["evicted_eph_zpages"] == 2
    assert usage(tmem) == {ALICE: (2, 2 * PAGE, 10 * PAGE, 0), BOB: (1, PAGE, 10 * PAGE, 0)}


def test_remotified_pages_still_count_until_they_are_flushed() -> None:
    tmem = origin_tmem(PlainStore(memory=1 << 22))
    tmem.table.accounts.configure(Quotas(default=3 * PAGE))
    pool = tmem.new_pool(ALICE_SWAP, PoolSpec(persistent=True))
    tmem.put_many(ALICE_SWAP, pool, [(1, index, page(index)) for index in range(3)])
    shipments = take_shipments(tmem.table, True, 2, 1 << 30)
    assert complete_shipments(tmem.table, 2, shipments, [True, True]) == 2
    assert tmem.counters()["remote_pages"] == 2

    assert tmem.put(ALICE_SWAP, pool, 1, 3, page(3)) == QUOTA
    assert usage(tmem) == {ALICE: (3, 3 * PAGE, 3 * PAGE, 1)}
    assert tmem.flush_page(ALICE_SWAP, pool, 1, 0)  # a remote page
    assert usage(tmem)[ALICE][:2] == (2, 2 * PAGE)
    assert tmem.put(ALICE_SWAP, pool, 1, 3, page(3)) == Stored(4)


def test_pages_taken_back_after_a_restart_count_before_their_client_claims_them() -> None:
    tmem = origin_tmem(PlainStore(memory=1 << 22))
    tmem.table.accounts.configure(Quotas(default=3 * PAGE))
    swap = PoolSpec(persistent=True)
    records = [PoolRecord(5, ALICE_SWAP, 0, swap)]
    keys = [(5, (1, 0, 0), index, 10 + index) for index in range(3)]
    assert restore(tmem, 2, records, keys) == 3
    assert usage(tmem) == {ALICE: (3, 3 * PAGE, 3 * PAGE, 0)}
    # A copy of a key on a second holder replaces nothing: still three pages.
    assert restore(tmem, 3, records, keys[:1]) == 0
    # A newer copy of a key on a third holder replaces the one there was.
    assert restore(tmem, 4, records, [(5, (1, 0, 0), 0, 20)]) == 1
    assert usage(tmem)[ALICE][:2] == (3, 3 * PAGE)

    assert tmem.new_pool(ALICE_SWAP, swap) == 0  # claimed
    assert tmem.put(ALICE_SWAP, 0, 1, 3, page(3)) == QUOTA
    assert tmem.put(ALICE_SWAP, 0, 1, 0, page(0)) == Stored(21)


def test_a_shared_pool_is_charged_once_to_its_scope() -> None:
    tmem = host(Quotas(default=2 * PAGE))
    spec = PoolSpec(shared_uuid=SHARED)
    first = tmem.new_pool(ALICE_SWAP, spec)
    second = tmem.new_pool(ALICE_CACHE, spec)
    bobs = tmem.new_pool(BOB_SWAP, spec)  # the same UUID in another scope: a pool of its own

    assert tmem.put(ALICE_SWAP, first, 1, 0, page(1)) == Stored(1)
    assert tmem.put(ALICE_CACHE, second, 1, 1, page(2)) == Stored(2)
    assert tmem.put(ALICE_SWAP, first, 1, 2, page(3)) == QUOTA
    assert tmem.put(BOB_SWAP, bobs, 1, 2, page(3)) == Stored(3)
    assert usage(tmem) == {ALICE: (2, 2 * PAGE, 2 * PAGE, 1), BOB: (1, PAGE, 2 * PAGE, 0)}
    # The pool stays while a sharer does, and its account with it.
    assert tmem.destroy_pool(ALICE_SWAP, first) == 0
    assert usage(tmem)[ALICE] == (2, 2 * PAGE, 2 * PAGE, 1)
    assert tmem.destroy_pool(ALICE_CACHE, second) == 2
    assert ALICE not in usage(tmem)


def test_clients_in_process_and_pools_held_for_peers_are_never_metered() -> None:
    tmem = origin_tmem(PlainStore(memory=1 << 22))
    tmem.table.accounts.configure(Quotas(default=PAGE))
    pool = tmem.new_pool("app", PoolSpec(persistent=True))
    assert tmem.put_many("app", pool, [(1, index, page(1)) for index in range(3)]) == [
        Stored(1), Stored(2), Stored(3),
    ]  # fmt: skip
    foreign = [
        ForeignPage(9, (1, 0, 0), index, index + 1, persistent=True, page=pack_page(page(1)))
        for index in range(3)
    ]
    origin = origin_client(2, "0123456789abcdef")
    assert put_foreign_pages(tmem.table, origin, foreign) == [Stored(1), Stored(2), Stored(3)]
    assert usage(tmem) == {}
    assert tmem.counters()["put_quota"] == 0


def test_the_pools_of_nbd_exports_are_never_metered() -> None:
    """An export is bounded by its size, set by an admin: no client quota refuses its writes."""
    tmem = origin_tmem(PlainStore(memory=1 << 22))
    tmem.table.accounts.configure(Quotas(default=PAGE))
    export = f"{EXPORT_PREFIX}admin:alice/swap0"
    pool = tmem.new_pool(export, PoolSpec(persistent=True))
    assert tmem.put_many(export, pool, [(1, index, page(1)) for index in range(3)]) == [
        Stored(1), Stored(2), Stored(3),
    ]  # fmt: skip
    assert usage(tmem) == {}


def test_an_account_reads_as_its_scope_and_figures() -> None:
    account = Account(ALICE, PAGE)
    assert repr(account) == "<Account client:alice pages=0 used=0 quota=4096 refused=0>"
    account.set_quota(0)
    assert (account.quota, account.limit) == (0, 1 << 63)
