"""The node's client sessions (`ramster.expiry`): Tmem calls keep a client seen, a sweep destroys
the pools of clients gone too long, as `Tmem/DestroyPool` does, and counts them. The clock is a
plain number the test moves; the same over real nodes is tests/integration/test_sessions.py."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from ramster.api.v1 import tmem_pb2
from ramster.backend import Backend
from ramster.errors import ResourceExhausted
from ramster.expiry import ClientSessions
from ramster.params import ModuleParams
from ramster.rpc.access import Caller, set_caller
from ramster.rpc.tmem_service import TmemService
from ramster.tiered import TieredTmem
from ramster.tmem import PoolSpec, TmemLimits
from ramster.tmem.keys import owner_name
from ramster.tmem.pool import PoolRecord
from ramster.trust.identity import LOCAL
from ramster.zcache import ZcacheConfig

LEASE, GRACE = 10, 100
PAGE = bytes(range(256)) * 16
SHARED = uuid.UUID("6a1c3e52-0b1d-4c1e-9d1f-0123456789ab")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def node(limits: TmemLimits | None = None) -> tuple[Backend, ClientSessions, TmemService, Clock]:
    params = ModuleParams(client_lease=LEASE, client_grace=GRACE)
    backend = Backend(ZcacheConfig(memory=1 << 20), limits, params)
    clock = Clock()
    sessions = ClientSessions(backend, clock)
    set_caller(Caller(LOCAL, "unix socket"))
    return backend, sessions, TmemService(TieredTmem(backend), sessions), clock


def owner(label: str) -> str:
    return owner_name("local:local", label)


def new_pool(service: TmemService, label: str, **spec: object) -> int:
    request = tmem_pb2.NewPoolRequest(client=label, **spec)  # type: ignore[arg-type]
    return asyncio.run(service.new_pool(request)).pool_id


def put(service: TmemService, label: str, pool: int) -> None:
    page = tmem_pb2.Page(oid=tmem_pb2.Oid(word0=1), index=0, data=PAGE)
    request = tmem_pb2.PutPagesRequest(client=label, pool_id=pool, pages=[page])
    assert list(asyncio.run(service.put_pages(request)).results) == [tmem_pb2.PUT_STATUS_STORED]


def keep_alive(service: TmemService, label: str) -> None:
    asyncio.run(service.keep_alive(tmem_pb2.KeepAliveRequest(client=label)))


def test_a_client_gone_past_its_lease_loses_its_ephemeral_pools_and_past_its_grace_the_rest() -> (
    None
):
    backend, sessions, service, clock = node()
    eph, pers = new_pool(service, "a"), new_pool(service, "a", persistent=True)
    put(service, "a", eph)
    put(service, "a", pers)
    clock.now += LEASE
    assert sessions.sweep() == []  # a lease to the second: still there
    clock.now += 0.5
    assert [(e.ephemeral, e.persistent, e.every) for e in sessions.sweep()] == [((0,), (), False)]
    assert sorted(backend.require().table.client_pools(owner("a"))) == [pers]
    clock.now += GRACE
    assert [(e.ephemeral, e.persistent, e.every) for e in sessions.sweep()] == [((), (1,), True)]
    assert backend.require().table.application_count == 0
    assert sessions.counters == {
        "client_expired": 1,
        "client_expired_eph_pools": 1,
        "client_expired_pers_pools": 1,
        "client_expired_pages": 2,
    }
    assert backend.require().counters()["pool_count"] == 0


@pytest.mark.parametrize("call", ["keep_alive", "put", "new_pool"])
def test_every_call_naming_the_client_keeps_its_pools(call: str) -> None:
    backend, sessions, service, clock = node()
    pool = new_pool(service, "a")
    for _ in range(3):  # each time just within the lease of the call before
        clock.now += LEASE
        if call == "keep_alive":
            keep_alive(service, "a")
        elif call == "put":
            put(service, "a", pool)
        else:
            new_pool(service, "b")  # another label: another client, not this one's session
            keep_alive(service, "a")
        assert sessions.sweep() == []
    assert sorted(backend.require().table.client_pools(owner("a"))) == [pool]


def test_another_labels_calls_keep_only_their_own_client() -> None:
    backend, sessions, service, clock = node()
    new_pool(service, "a")
    new_pool(service, "b")
    clock.now += LEASE
    keep_alive(service, "b")
    clock.now += 1
    assert [e.client for e in sessions.sweep()] == [owner("a")]
    assert backend.require().table.client_names() == [owner("b")]


def test_a_shared_pool_loses_only_the_gone_clients_handle() -> None:
    backend, sessions, service, clock = node()
    for label in ("a", "b"):
        new_pool(service, label, shared_uuid=SHARED.bytes)
    put(service, "b", 0)
    clock.now += LEASE
    keep_alive(service, "b")
    clock.now += 1
    (expiry,) = sessions.sweep()
    assert (expiry.client, expiry.ephemeral) == (owner("a"), (0,))
    assert sessions.counters["client_expired_pages"] == 0  # b still holds them
    assert backend.require().get_many(owner("b"), 0, [(1, 0)], free=False) == [PAGE]


def test_names_of_expired_clients_stop_counting_against_max_clients() -> None:
    backend, sessions, service, clock = node(TmemLimits(max_clients=2))
    new_pool(service, "a")
    new_pool(service, "b")
    with pytest.raises(ResourceExhausted) as refused:
        new_pool(service, "c")
    assert refused.value.message == "clients 2 reached max_clients 2"
    clock.now += LEASE + 1
    assert len(sessions.sweep()) == 2
    assert new_pool(service, "c") == 0
    assert backend.require().table.application_count == 1


def test_recovered_pools_count_from_when_the_node_began_serving() -> None:
    async def scenario() -> None:
        backend, sessions, _, clock = node()
        backend.require().install_recovered(PoolRecord(5, owner("a"), 0, PoolSpec()))
        clock.now += 3 * LEASE  # recovery took long: the node serves only now
        sessions.start()
        clock.now += LEASE
        assert sessions.sweep() == []
        clock.now += 1
        assert [e.client for e in sessions.sweep()] == [owner("a")]
        await sessions.stop()

    asyncio.run(scenario())


def test_nothing_is_swept_while_the_node_takes_its_pages_back() -> None:
    backend, sessions, service, clock = node()
    new_pool(service, "a")
    backend.recovering = True
    clock.now += GRACE * 2
    assert sessions.sweep() == []
    backend.recovering = False
    assert len(sessions.sweep()) == 1


def test_the_sweep_runs_a_quarter_lease_apart_and_five_seconds_at_most() -> None:
    backend, sessions, _, _ = node()
    assert sessions.sweep_interval == 2.5
    backend.set_param("client_lease", "3600")
    assert sessions.sweep_interval == 5.0


def test_calls_naming_clients_without_pools_keep_no_session() -> None:
    """A flood of keepalives under made-up labels stores nothing on the node."""
    _, sessions, service, clock = node()
    for n in range(100):
        keep_alive(service, f"made-up-{n}")
    new_pool(service, "a")
    keep_alive(service, "a")
    assert repr(sessions).startswith("<ClientSessions idle <Sessions clients=1 ")
    clock.now += LEASE + 1
    assert [e.client for e in sessions.sweep()] == [owner("a")]
    assert repr(sessions).startswith("<ClientSessions idle <Sessions clients=0 ")
