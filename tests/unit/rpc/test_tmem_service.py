"""The `Tmem` service's gets on the wire (`ramster.rpc.tmem_service`): the get mode a request
names, and the binding's `Call` telling whether the caller still waits, handed to the node's
`TieredTmem`. The get path itself (which gets free, remote pages) is in tests/unit/test_tiered.py;
remote pages over the network in tests/integration/test_remote_gets.py.
"""

from __future__ import annotations

import asyncio

import pytest

from ramster.api.v1 import tmem_pb2
from ramster.backend import Backend
from ramster.errors import DeadlineExceeded, PoolNotFound
from ramster.expiry import ClientSessions
from ramster.page import decompress_page
from ramster.params import ModuleParams
from ramster.rpc.access import Caller, set_caller
from ramster.rpc.tmem_service import TmemService
from ramster.tiered import TieredTmem
from ramster.tmem import PoolSpec
from ramster.tmem.keys import owner_name
from ramster.trust.identity import LOCAL
from ramster.zcache import ZcacheConfig

APP = "app"
OWNER = owner_name("local:local", APP)
"""The node's client of label `APP` of the local identity (`owner_of`)."""
PAGE = bytes(range(256)) * 16


class FakeCall:
    """A call whose caller waits (`alive`) or has gone."""

    def __init__(self, alive: bool) -> None:
        self._alive = alive

    def alive(self) -> bool:
        return self._alive


def get_request(pool: int, mode: int) -> tmem_pb2.GetPagesRequest:
    key = tmem_pb2.PageKey(oid=tmem_pb2.Oid(word0=7), index=0)
    return tmem_pb2.GetPagesRequest(client=APP, pool_id=pool, keys=[key], mode=mode, packed=True)


def service_with_page(spec: PoolSpec) -> tuple[TmemService, TieredTmem, Backend, int]:
    backend = Backend(ZcacheConfig(memory=1 << 20), params=ModuleParams(persistent_copies=1))
    tmem = backend.require()
    pool = tmem.new_pool(OWNER, spec)
    tmem.put(OWNER, pool, 7, 0, PAGE)
    set_caller(Caller(LOCAL, "unix socket"))
    tiered = TieredTmem(backend)
    return TmemService(tiered, ClientSessions(backend)), tiered, backend, pool


DEFAULT, FREE, KEEP = (
    tmem_pb2.GET_MODE_UNSPECIFIED,
    tmem_pb2.GET_MODE_FREE,
    tmem_pb2.GET_MODE_KEEP,
)


@pytest.mark.parametrize(
    ("spec", "mode", "frees"),
    [
        (PoolSpec(), DEFAULT, True),
        (PoolSpec(persistent=True), DEFAULT, False),
        (PoolSpec(persistent=True), FREE, True),
        (PoolSpec(), KEEP, False),
    ],
    ids=["private-eph", "pers", "pers-free", "private-eph-keep"],
)
def test_the_get_mode_asks_the_pool_rule_to_free_or_to_keep(
    spec: PoolSpec, mode: int, frees: bool
) -> None:
    service, _, backend, pool = service_with_page(spec)
    response = asyncio.run(service.get_pages(get_request(pool, mode), FakeCall(alive=True)))
    assert list(response.found) == [True]
    still = backend.require().get_many(OWNER, pool, [(7, 0)], free=False)
    assert still == ([None] if frees else [PAGE])


def test_a_get_pages_call_whose_caller_is_gone_frees_nothing() -> None:
    service, tiered, backend, pool = service_with_page(PoolSpec(persistent=True))
    with pytest.raises(DeadlineExceeded) as raised:
        asyncio.run(service.get_pages(get_request(pool, FREE), FakeCall(alive=False)))
    assert raised.value.message == "the caller is gone: no page was freed"
    assert backend.require().get_many(OWNER, pool, [(7, 0)], free=False) == [PAGE]
    assert tiered.counters["frontswap_loads"] == 0


def batch_request(pool: int, mode: int) -> tmem_pb2.GetPageBatchRequest:
    keys = tmem_pb2.KeyBatch(oid_word0=[7, 8], indexes=[0, 0])
    return tmem_pb2.GetPageBatchRequest(client=APP, pool_id=pool, keys=keys, mode=mode)


def test_a_lean_get_frees_by_the_same_rule_and_answers_a_miss_as_length_0() -> None:
    service, _, backend, pool = service_with_page(PoolSpec())
    response = asyncio.run(service.get_page_batch(batch_request(pool, DEFAULT), FakeCall(True)))
    assert list(response.lengths) == [len(response.data), 0]
    assert decompress_page(response.data, False, response.page_size) == PAGE
    assert backend.require().get_many(OWNER, pool, [(7, 0)], free=False) == [None]


def test_a_lean_get_whose_caller_is_gone_frees_nothing() -> None:
    service, tiered, backend, pool = service_with_page(PoolSpec(persistent=True))
    with pytest.raises(DeadlineExceeded) as raised:
        asyncio.run(service.get_page_batch(batch_request(pool, FREE), FakeCall(alive=False)))
    assert raised.value.message == "the caller is gone: no page was freed"
    assert backend.require().get_many(OWNER, pool, [(7, 0)], free=False) == [PAGE]
    assert tiered.counters["frontswap_loads"] == 0


def test_keep_alive_answers_the_lease_and_the_grace_it_keeps_persistent_pools_for() -> None:
    backend = Backend(ZcacheConfig(memory=1 << 20), params=ModuleParams(client_lease=7))
    service = TmemService(TieredTmem(backend), ClientSessions(backend))
    set_caller(Caller(LOCAL, "unix socket"))
    response = asyncio.run(service.keep_alive(tmem_pb2.KeepAliveRequest(client=APP)))
    assert (response.lease_seconds, response.grace_seconds) == (7, 3600)
    backend.set_param("client_grace", "2")  # shorter than the lease: the lease holds
    response = asyncio.run(service.keep_alive(tmem_pb2.KeepAliveRequest(client=APP)))
    assert (response.lease_seconds, response.grace_seconds) == (7, 7)


def test_a_pool_uid_reaches_its_pool_only_and_never_a_later_one_of_the_same_id() -> None:
    backend = Backend(ZcacheConfig(memory=1 << 20))
    service = TmemService(TieredTmem(backend), ClientSessions(backend))
    set_caller(Caller(LOCAL, "unix socket"))
    new = tmem_pb2.NewPoolRequest(client=APP)
    first = asyncio.run(service.new_pool(new))
    asyncio.run(
        service.destroy_pool(tmem_pb2.DestroyPoolRequest(client=APP, pool_id=first.pool_id))
    )
    second = asyncio.run(service.new_pool(new))
    assert (second.pool_id, first.pool_id) == (0, 0)
    assert second.pool_uid > first.pool_uid > 0
    backend.require().put(OWNER, 0, 7, 0, PAGE)
    stale = get_request(0, KEEP)
    stale.pool_uid = first.pool_uid
    with pytest.raises(PoolNotFound) as refused:
        asyncio.run(service.get_pages(stale, FakeCall(alive=True)))
    assert refused.value.message == (
        f"pool_id 0 of client 'local:local/app' is no longer pool {first.pool_uid}: it was "
        "destroyed or expired (create a new pool)"
    )
    current = get_request(0, KEEP)
    current.pool_uid = second.pool_uid
    found = asyncio.run(service.get_pages(current, FakeCall(alive=True)))
    assert list(found.found) == [True]
    unchecked = asyncio.run(service.get_pages(get_request(0, KEEP), FakeCall(alive=True)))
    assert list(unchecked.found) == [True]  # 0: whatever pool the id names, as before
