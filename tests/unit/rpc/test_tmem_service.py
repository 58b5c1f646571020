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
from ramster.errors import DeadlineExceeded
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
    return TmemService(tiered), tiered, backend, pool


DEFAULT, FREE, KEEP = (
    tmem_pb2.GET_MODE_POOL_DEFAULT,
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
