"""Client sessions (`ramster.tmem.sessions`): which pools of which clients are due at a time, with
the clock a plain number. Destroying them is `Tmem.destroy_pool`'s (tested in test_tmem.py); the
node's sweep is tests/integration/test_sessions.py."""

from __future__ import annotations

import uuid

from ramster.holder.foreign import origin_client
from ramster.page import pack_page
from ramster.tmem import PageTable, PoolSpec, Tmem
from ramster.tmem.keys import EXPORT_PREFIX
from ramster.tmem.pool import PoolRecord
from ramster.tmem.sessions import Expiry, Sessions
from ramster.zcache import PlainStore
from tests.support.foreign import ForeignPage, put_foreign_pages

EPHEMERAL = PoolSpec()
PERSISTENT = PoolSpec(persistent=True)
SHARED = PoolSpec(shared_uuid=uuid.UUID("6a1c3e52-0b1d-4c1e-9d1f-0123456789ab"))
LEASE, GRACE = 30.0, 3600.0


def tmem() -> Tmem:
    return Tmem(PageTable(PlainStore(memory=1 << 20)))


def test_a_client_seen_within_its_lease_keeps_every_pool() -> None:
    host, sessions = tmem(), Sessions(since=0.0)
    sessions.seen("a", 100.0)
    host.new_pool("a", EPHEMERAL)
    host.new_pool("a", PERSISTENT)
    assert sessions.due(host.table, 130.0, LEASE, GRACE) == []


def test_past_its_lease_a_client_loses_its_ephemeral_pools_only() -> None:
    host, sessions = tmem(), Sessions(since=0.0)
    sessions.seen("a", 100.0)
    for spec in (EPHEMERAL, PERSISTENT, EPHEMERAL, SHARED):
        host.new_pool("a", spec)
    assert sessions.due(host.table, 130.5, LEASE, GRACE) == [
        Expiry("a", 30.5, ephemeral=(0, 2, 3), persistent=(), every=False)
    ]


def test_past_its_grace_a_client_loses_every_pool() -> None:
    host, sessions = tmem(), Sessions(since=0.0)
    sessions.seen("a", 100.0)
    host.new_pool("a", EPHEMERAL)
    host.new_pool("a", PERSISTENT)
    assert sessions.due(host.table, 3701.0, LEASE, GRACE) == [
        Expiry("a", 3601.0, ephemeral=(0,), persistent=(1,), every=True)
    ]


def test_a_client_with_persistent_pools_only_is_due_at_its_grace_not_its_lease() -> None:
    host, sessions = tmem(), Sessions(since=0.0)
    sessions.seen("a", 0.0)
    host.new_pool("a", PERSISTENT)
    assert sessions.due(host.table, 3600.0, LEASE, GRACE) == []
    assert sessions.due(host.table, 3600.5, LEASE, GRACE) == [
        Expiry("a", 3600.5, ephemeral=(), persistent=(0,), every=True)
    ]


def test_a_grace_shorter_than_the_lease_acts_as_the_lease() -> None:
    host, sessions = tmem(), Sessions(since=0.0)
    sessions.seen("a", 0.0)
    host.new_pool("a", PERSISTENT)
    assert sessions.due(host.table, 30.0, lease=30.0, grace=5.0) == []
    assert sessions.due(host.table, 31.0, lease=30.0, grace=5.0) == [
        Expiry("a", 31.0, ephemeral=(), persistent=(0,), every=True)
    ]


def test_each_client_is_judged_by_its_own_last_call() -> None:
    host, sessions = tmem(), Sessions(since=0.0)
    for client, seen in (("old", 10.0), ("new", 50.0)):
        sessions.seen(client, seen)
        host.new_pool(client, EPHEMERAL)
    sessions.seen("old", 45.0)  # a later call (a keepalive) moves it
    assert sessions.due(host.table, 76.0, LEASE, GRACE) == [
        Expiry("old", 31.0, ephemeral=(0,), persistent=(), every=True)
    ]
    assert sessions.last_seen("new") == 50.0


def test_pools_never_asked_for_count_from_since() -> None:
    """Pools recovered after a restart wait for their client from when the node serves."""
    host, sessions = tmem(), Sessions(since=500.0)
    host.install_recovered(PoolRecord(7, "a", 3, PERSISTENT))
    host.install_recovered(PoolRecord(8, "a", 4, EPHEMERAL))
    assert sessions.last_seen("a") == 500.0
    assert sessions.due(host.table, 530.0, LEASE, GRACE) == []
    assert sessions.due(host.table, 531.0, LEASE, GRACE) == [
        Expiry("a", 31.0, ephemeral=(4,), persistent=(), every=False)
    ]


def test_clients_of_other_nodes_are_never_due() -> None:
    """Pages held for peers go after origin_grace (`ramster.holder`), not by session."""
    host, sessions = tmem(), Sessions(since=0.0)
    page = ForeignPage(1, (5, 0, 0), 0, 1, True, pack_page(bytes(4096)))
    put_foreign_pages(host.table, origin_client(2, "e1"), [page])
    assert host.table.client_names() == [origin_client(2, "e1")]
    assert sessions.due(host.table, 1e9, LEASE, GRACE) == []


def test_the_pools_of_nbd_exports_are_never_due() -> None:
    """An export lives until it is deleted (`ramster.nbd`): no session of a client keeps it."""
    host, sessions = tmem(), Sessions(since=0.0)
    export = f"{EXPORT_PREFIX}admin:alice/swap0"
    host.new_pool(export, PERSISTENT)
    assert sessions.due(host.table, 1e9, LEASE, GRACE) == []


def test_sessions_of_clients_without_pools_are_forgotten_by_a_sweep() -> None:
    host, sessions = tmem(), Sessions(since=0.0)
    sessions.seen("keeps", 1.0)
    host.new_pool("keeps", EPHEMERAL)
    sessions.seen("only-called", 2.0)
    sessions.seen("gone", 3.0)
    host.new_pool("gone", EPHEMERAL)
    host.destroy_pool("gone", 0)
    assert len(sessions) == 3
    assert sessions.due(host.table, 4.0, LEASE, GRACE) == []
    assert len(sessions) == 1
    assert sessions.last_seen("only-called") == 0.0  # since: forgotten


def test_forget_drops_a_session() -> None:
    sessions = Sessions(since=7.0)
    sessions.seen("a", 9.0)
    sessions.forget("a")
    sessions.forget("never-seen")
    assert sessions.last_seen("a") == 7.0
    assert repr(sessions) == "<Sessions clients=0 since=7.0>"
