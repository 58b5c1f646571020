"""The switchable backend of a node (`ramster.backend`): what switching the `zcache` param off and
on again keeps, and the quotas it holds every backend it loads to.

A reload starts an empty `Tmem`, but peers may still hold copies filed under this node's epoch and
its old pool uids, so a reloaded backend goes on numbering pools where the last one stopped. A
pool's uid is read here as peers see it: the `pool_uid` its pages are shipped under. The remote
layer over a `Backend` is in tests/unit/remote/.
"""

from __future__ import annotations

import pytest

from ramster.backend import Backend
from ramster.errors import FailedPrecondition
from ramster.params import ModuleParams
from ramster.remote.shipping import take_shipments
from ramster.tmem import PoolSpec, Rejected, RejectReason, Stored, Tmem
from ramster.tmem.keys import owner_name
from ramster.tmem.quota import Quotas
from ramster.zcache import ZcacheConfig

APP = "app"
PAGE = bytes(4096)
ALL = 1 << 30


def backend(params: ModuleParams) -> Backend:
    return Backend(ZcacheConfig(memory=1 << 20), params=params)


def shipped_uid(tmem: Tmem, pool: int) -> int:
    """The uid peers know `pool` by: the one its pages are shipped under."""
    assert isinstance(tmem.put(APP, pool, 1, 0, PAGE), Stored)
    [shipment] = take_shipments(tmem.table, False, 1, ALL)
    return shipment.pool_uid


def test_pool_uids_go_on_after_zcache_is_switched_off_and_on() -> None:
    node = backend(ModuleParams())
    first = node.require()
    pools = [first.new_pool(APP, PoolSpec()) for _ in range(2)]
    assert [shipped_uid(first, pool) for pool in pools] == [1, 2]

    assert node.set_param("zcache", "off")
    assert node.tmem is None
    assert node.set_param("zcache", "on")

    second = node.require()
    assert second is not first
    assert node.generation == 2
    pool = second.new_pool(APP, PoolSpec())
    assert pool == pools[0]  # pool ids belong to the client of one backend...
    assert shipped_uid(second, pool) == 3  # ...uids to the node's epoch: never given twice
    assert second.table.next_pool_uid == 4

    assert node.set_param("zcache", "off")
    assert node.set_param("zcache", "on")
    assert shipped_uid(node.require(), node.require().new_pool(APP, PoolSpec())) == 4


def test_a_backend_loaded_later_starts_at_the_first_uid() -> None:
    node = backend(ModuleParams(zcache=False))
    assert node.tmem is None
    assert node.set_param("zcache", "on")
    tmem = node.require()
    assert shipped_uid(tmem, tmem.new_pool(APP, PoolSpec())) == 1


def test_a_refused_switch_off_keeps_the_backend_and_its_uids() -> None:
    node = backend(ModuleParams())
    tmem = node.require()
    pool = tmem.new_pool(APP, PoolSpec(persistent=True))
    assert isinstance(tmem.put(APP, pool, 1, 0, PAGE), Stored)

    with pytest.raises(FailedPrecondition) as caught:
        node.set_param("zcache", "off")
    assert caught.value.message == (
        "zcache holds 1 persistent pages: they must be returned until flushed, so the backend "
        "stays on (flush or destroy their pools first)"
    )
    assert node.require() is tmem
    assert node.params.zcache
    assert tmem.table.next_pool_uid == 2


ALICE, BOB = "client:alice", "client:bob"


def quotas_held(node: Backend) -> dict[str, int]:
    """The quota each identity's account is held to now."""
    return {account.scope: account.quota for account in node.require().table.accounts}


def test_client_quota_and_the_quotas_set_per_identity_hold_every_loaded_backend() -> None:
    node = backend(ModuleParams())
    tmem = node.require()
    for identity in (ALICE, BOB):
        tmem.new_pool(owner_name(identity, "cache"), PoolSpec())
    assert quotas_held(node) == {ALICE: 0, BOB: 0}

    assert node.set_param("client_quota", "8KiB")
    node.set_quota(BOB, 4096)
    assert quotas_held(node) == {ALICE: 8192, BOB: 4096}
    assert node.quotas == Quotas(8192, {BOB: 4096})
    assert tmem.put_many(owner_name(BOB, "cache"), 0, [(1, 0, PAGE), (1, 1, PAGE)]) == [
        Stored(1),
        Rejected(RejectReason.QUOTA),
    ]

    assert node.set_param("zcache", "off")
    assert node.set_param("zcache", "on")
    node.require().new_pool(owner_name(BOB, "cache"), PoolSpec())
    assert quotas_held(node) == {BOB: 4096}

    assert node.unset_quota(BOB)
    assert not node.unset_quota(BOB)
    assert quotas_held(node) == {BOB: 8192}
    assert node.quotas == Quotas(8192)
