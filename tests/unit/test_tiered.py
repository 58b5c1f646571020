"""The node's put and get paths (`ramster.tiered.TieredTmem`) over a real `Backend`, without
protobuf: a put's second copy and the NO_REPLICA refusal, the pressure wake-up, a get that frees
(the core's rule, decided once) and frees nothing once its caller is gone, remote pages fetched or
unanswered, and the kernel-named counters. The remote layer is a plain fake (`FakeRemote`); the
real one is in tests/unit/remote/, the wire in tests/unit/rpc/test_tmem_service.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import pytest

from ramster.backend import Backend
from ramster.errors import DeadlineExceeded, InternalError, Unavailable
from ramster.page import Codec, PackedPage, pack_page
from ramster.params import ModuleParams
from ramster.remote.copies import copies_of_puts
from ramster.remote.handles import RemoteRef, Shipment, Unanswered
from ramster.remote.layer import Fetched
from ramster.remote.shipping import complete_shipments, take_shipments
from ramster.tiered import TieredTmem
from ramster.tmem import Hit, Oid, PoolSpec, PutOutcome, Rejected, RejectReason, Stored, Tmem
from ramster.zcache import ZcacheConfig

APP = "app"
PAGE = bytes(range(256)) * 16
ALL = 1 << 30
PEER = 2


class FakeRemote:
    """A remote layer that refuses the second copy of `unreplicated` keys (made with the put, or
    after it), answers fetches from `answers` (by index), and records what it was asked: the keys
    of the copies to make (`replicated`), the copies made and whether they take back (`copied`)."""

    def __init__(
        self,
        unreplicated: frozenset[tuple[Oid, int]] = frozenset(),
        answers: dict[int, Fetched] | None = None,
    ) -> None:
        self.unreplicated = unreplicated
        self.answers = answers or {}
        self.replicated: list[list[tuple[Oid, int]]] = []
        self.copied: list[tuple[list[tuple[Oid, int]], bool]] = []
        self.fetched: list[tuple[list[int], bool]] = []
        self.pressure_notes = 0

    def copies_of_puts(
        self,
        tmem: Tmem,
        client: str,
        pool_id: int,
        keys: Sequence[tuple[Oid, int]],
        outcomes: Sequence[PutOutcome],
    ) -> list[Shipment]:
        self.replicated.append(list(keys))
        return copies_of_puts(tmem.table, client, pool_id, keys, outcomes)

    async def copy(
        self, tmem: Tmem, shipments: list[Shipment], take_back: bool
    ) -> set[tuple[Oid, int]]:
        self.copied.append(([(s.oid, s.index) for s in shipments], take_back))
        return {(s.oid, s.index) for s in shipments} & self.unreplicated

    async def fetch(self, refs: Sequence[RemoteRef], keep: bool) -> list[Fetched]:
        self.fetched.append(([ref.index for ref in refs], keep))
        return [self.answers.get(ref.index) for ref in refs]

    def note_pressure(self) -> None:
        self.pressure_notes += 1


def backend_with_page(spec: PoolSpec) -> tuple[Backend, int]:
    backend = Backend(ZcacheConfig(memory=1 << 20), params=ModuleParams(persistent_copies=1))
    tmem = backend.require()
    pool = tmem.new_pool(APP, spec)
    tmem.put(APP, pool, 7, 0, PAGE)
    return backend, pool


def still_here(backend: Backend, pool: int) -> list[bytes | None]:
    return backend.require().get_many(APP, pool, [(7, 0)], free=False)


def alive() -> bool:
    return True


def gone() -> bool:
    return False


SHARED = PoolSpec(shared_uuid=uuid.UUID(int=5))
KEY = ((7, 0, 0), 0)


@pytest.mark.parametrize(
    ("spec", "free", "frees"),
    [
        (PoolSpec(), None, True),
        (SHARED, None, False),
        (PoolSpec(persistent=True), None, False),
        (PoolSpec(persistent=True), True, True),
        (PoolSpec(), False, False),
    ],
    ids=["private-eph", "shared-eph", "pers", "pers-free", "private-eph-keep"],
)
def test_a_get_frees_by_the_pool_rule_or_the_mode(
    spec: PoolSpec, free: bool | None, frees: bool
) -> None:
    backend, pool = backend_with_page(spec)
    tiered = TieredTmem(backend)
    got = asyncio.run(tiered.get(APP, pool, [KEY], free))
    hits = tiered.deliver(got, alive)
    assert [hit is not None for hit in hits] == [True]
    assert still_here(backend, pool) == ([None] if frees else [PAGE])


def test_a_get_that_frees_whose_caller_is_gone_frees_nothing() -> None:
    backend, pool = backend_with_page(PoolSpec(persistent=True))
    tiered = TieredTmem(backend)
    got = asyncio.run(tiered.get(APP, pool, [KEY], True))
    with pytest.raises(DeadlineExceeded) as raised:
        tiered.deliver(got, gone)
    assert raised.value.message == "the caller is gone: no page was freed"
    assert still_here(backend, pool) == [PAGE]
    assert tiered.counters["frontswap_loads"] == 0


def test_a_get_that_keeps_does_not_ask_whether_the_caller_waits() -> None:
    backend, pool = backend_with_page(PoolSpec(persistent=True))
    tiered = TieredTmem(backend)
    got = asyncio.run(tiered.get(APP, pool, [KEY, ((7, 0, 0), 1)], False))
    assert [hit is not None for hit in tiered.deliver(got, gone)] == [True, False]
    assert (tiered.counters["frontswap_loads"], tiered.counters["frontswap_failed_loads"]) == (1, 1)


def test_a_page_another_get_took_meanwhile_is_a_miss_of_the_later_one() -> None:
    backend, pool = backend_with_page(PoolSpec())
    tiered = TieredTmem(backend)
    first = asyncio.run(tiered.get(APP, pool, [KEY], None))
    second = asyncio.run(tiered.get(APP, pool, [KEY], None))
    assert [hit is not None for hit in second.hits] == [True]
    assert [hit is not None for hit in tiered.deliver(first, alive)] == [True]
    assert tiered.deliver(second, alive) == [None]
    assert (tiered.counters["cleancache_succ_gets"], tiered.counters["cleancache_failed_gets"]) == (
        1,
        1,
    )


def test_gets_are_counted_only_once_delivered() -> None:
    backend, pool = backend_with_page(PoolSpec())
    tiered = TieredTmem(backend)
    got = asyncio.run(tiered.get(APP, pool, [KEY], None))
    assert tiered.counters["cleancache_succ_gets"] == 0
    tiered.deliver(got, alive)
    assert tiered.counters["cleancache_succ_gets"] == 1


def test_a_persistent_put_a_peer_took_no_copy_of_is_refused_no_replica() -> None:
    backend = Backend(ZcacheConfig(memory=1 << 20), params=ModuleParams(persistent_copies=2))
    pool = backend.require().new_pool(APP, PoolSpec(persistent=True))
    remote = FakeRemote(unreplicated=frozenset({((7, 0, 0), 1)}))
    tiered = TieredTmem(backend, remote)
    pages = [((7, 0, 0), index, PAGE) for index in range(3)]
    outcomes = asyncio.run(tiered.put(APP, pool, pages))
    assert outcomes == [Stored(1), Rejected(RejectReason.NO_REPLICA), Stored(3)]
    keys = [((7, 0, 0), 0), ((7, 0, 0), 1), ((7, 0, 0), 2)]
    assert (remote.replicated, remote.copied) == ([keys], [(keys, True)])
    assert remote.pressure_notes == 1
    assert tiered.counters["frontswap_succ_stores"] == 2
    assert tiered.counters["frontswap_failed_stores"] == 1


def test_put_first_stores_and_returns_the_copies_to_make_which_take_nothing_back() -> None:
    backend = Backend(ZcacheConfig(memory=1 << 20), params=ModuleParams(persistent_copies=2))
    pool = backend.require().new_pool(APP, PoolSpec(persistent=True))
    remote = FakeRemote(unreplicated=frozenset({((7, 0, 0), 1)}))
    tiered = TieredTmem(backend, remote)
    pages = [((7, 0, 0), index, PAGE) for index in range(3)]
    outcomes, copying = tiered.put_first(APP, pool, pages)
    assert outcomes == [Stored(1), Stored(2), Stored(3)]
    assert (copying.pages, remote.copied, remote.pressure_notes) == (3, [], 1)
    assert asyncio.run(copying.made()) == {((7, 0, 0), 1)}
    assert remote.copied == [([((7, 0, 0), 0), ((7, 0, 0), 1), ((7, 0, 0), 2)], False)]
    assert still_here(backend, pool) == [PAGE]  # (7, 0): nothing taken back
    assert backend.require().get_many(APP, pool, [(7, 1)], free=False) == [PAGE]
    assert tiered.counters["frontswap_succ_stores"] == 3


def test_an_ephemeral_put_asks_no_copy_but_wakes_the_shipping_loop() -> None:
    backend = Backend(ZcacheConfig(memory=1 << 20))
    pool = backend.require().new_pool(APP, PoolSpec())
    remote = FakeRemote()
    tiered = TieredTmem(backend, remote)
    outcomes = asyncio.run(tiered.put(APP, pool, [((7, 0, 0), 0, PAGE), ((7, 0, 0), 1, PAGE)]))
    assert outcomes == [Stored(1), Stored(2)]
    assert (remote.replicated, remote.pressure_notes) == ([], 1)
    assert tiered.counters["cleancache_puts"] == 2


def test_flushes_count_as_the_kernel_invalidates() -> None:
    backend, pool = backend_with_page(PoolSpec(persistent=True))
    tiered = TieredTmem(backend)
    assert tiered.flush(APP, pool, [KEY, ((7, 0, 0), 1)]) == [True, False]
    assert tiered.counters["frontswap_invalidates"] == 1
    assert tiered.counters["cleancache_invalidates"] == 0


def shipped(spec: PoolSpec, pages: int) -> tuple[Backend, int, list[Hit]]:
    """A backend whose pool holds `pages` pages (indexes 0..), every one shipped to PEER, and
    the hits a get found before they went (what a holder answers)."""
    backend = Backend(ZcacheConfig(memory=1 << 20), params=ModuleParams(persistent_copies=1))
    tmem = backend.require()
    pool = tmem.new_pool(APP, spec)
    for index in range(pages):
        tmem.put(APP, pool, 7, index, PAGE)
    found = tmem.get_many_packed(APP, pool, [((7, 0, 0), index) for index in range(pages)])
    hits = [hit for hit in found if isinstance(hit, Hit)]
    shipments = take_shipments(tmem.table, spec.persistent, pages, ALL)
    assert complete_shipments(tmem.table, PEER, shipments, [True] * pages) == pages
    return backend, pool, hits


def test_a_get_fetches_the_pages_on_peers_and_keeps_them_there_unless_it_frees() -> None:
    backend, pool, [answer, _] = shipped(PoolSpec(), 2)
    remote = FakeRemote(answers={0: answer})
    tiered = TieredTmem(backend, remote)
    got = asyncio.run(tiered.get(APP, pool, [KEY, ((7, 0, 0), 1)], False))
    assert got.hits == [answer, None]
    assert remote.fetched == [([0, 1], True)]
    assert tiered.deliver(got, alive) == [answer, None]
    assert (tiered.counters["cleancache_succ_gets"], tiered.counters["cleancache_failed_gets"]) == (
        1,
        1,
    )


def test_persistent_pages_no_holder_answered_fail_the_get_unavailable() -> None:
    backend, pool, _ = shipped(PoolSpec(persistent=True), 3)
    remote = FakeRemote(answers={1: Unanswered((PEER, 3)), 2: Unanswered((PEER,))})
    tiered = TieredTmem(backend, remote)
    keys = [((7, 0, 0), index) for index in range(3)]
    with pytest.raises(Unavailable) as raised:
        asyncio.run(tiered.get(APP, pool, keys, True))
    assert raised.value.message == (
        "keys[1] is a page held by node 2 and node 3, which did not answer in time "
        "(and 1 more keys): it is kept, try again"
    )
    assert remote.fetched == [([0, 1, 2], False)]
    assert tiered.counters["frontswap_loads"] == tiered.counters["frontswap_failed_loads"] == 0


def test_a_node_alone_misses_the_pages_it_cannot_fetch() -> None:
    backend, pool, _ = shipped(PoolSpec(), 1)
    tiered = TieredTmem(backend)
    got = asyncio.run(tiered.get(APP, pool, [KEY], None))
    assert tiered.deliver(got, alive) == [None]
    assert tiered.counters["cleancache_failed_gets"] == 1


ZSTD_FRAME_OF_DICTIONARY_9 = Hit(
    # A zstd frame naming dictionary 9, which this node never had: a corrupted dictionary id.
    PackedPage(pack_page(PAGE, Codec("zstd", 1)).payload, False, 4096, "zstd", 9),
    1,
    0,
    1,
)


def test_a_page_whose_dictionary_is_unknown_is_a_counted_miss_never_a_wrong_page() -> None:
    backend, _ = backend_with_page(PoolSpec(codec=Codec("zstd", 1)))
    tiered = TieredTmem(backend)
    plain = Hit(pack_page(PAGE, Codec("zstd", 1)), 1, 1, 2)
    pages = tiered.readable([ZSTD_FRAME_OF_DICTIONARY_9, None, plain], PoolSpec(), 1)
    assert pages == [None, None, plain.page]
    assert tiered.counters["zstd_pages_lost"] == 1


def test_a_persistent_page_whose_dictionary_is_unknown_fails_the_get_with_a_clear_error() -> None:
    backend, _ = backend_with_page(PoolSpec(persistent=True, codec=Codec("zstd", 1)))
    tiered = TieredTmem(backend)
    with pytest.raises(InternalError) as lost:
        tiered.readable([ZSTD_FRAME_OF_DICTIONARY_9], PoolSpec(persistent=True), 1)
    assert lost.value.message == (
        "a page of the pool is lost: zstd page names dictionary 9, which is not known here"
    )
    assert tiered.counters["zstd_pages_lost"] == 1
