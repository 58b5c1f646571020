"""Client sessions over a real node (issue 12): a client that is gone loses its ephemeral pools
after `client_lease` and its persistent ones after `client_grace`, counted and logged; an open
client keeps both however idle; a frontswap cut off inside the grace gets its pages back; names
of vanished clients stop counting against `--max-clients`; and a client that comes back after
its pools expired never reaches a newer pool that got the same id. Leases are whole seconds, so
these set 1 s and wait for states with deadlines. The pure rules are tests/unit/tmem/
test_sessions.py and tests/unit/test_expiry.py.
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Iterator

import pytest

from ramster.client import Cleancache, Frontswap, SyncClient
from ramster.errors import NotFound, ResourceExhausted
from tests.support.delay_proxy import DelayProxy
from tests.support.nodes import NodeFactory, NodeProcess
from tests.support.processes import wait_for


def page(n: int) -> bytes:
    """A distinct, compressible page."""
    return (f"page {n:6d} ".encode() * 342)[:4096]


def stats_of(node: NodeProcess) -> dict[str, int]:
    with SyncClient(node.address, "observer") as observer:  # admin calls keep no session
        return observer.stats()


def expired(node: NodeProcess) -> dict[str, int]:
    stats = stats_of(node)
    return {name: value for name, value in stats.items() if name.startswith("client_expired")}


def set_terms(node: NodeProcess, lease: int, grace: int) -> None:
    with SyncClient(node.address, "operator") as operator:
        operator.set_param("client_lease", str(lease))
        params = operator.set_param("client_grace", str(grace))
    assert (params["client_lease"], params["client_grace"]) == (str(lease), str(grace))


@pytest.fixture
def proxied(node: NodeProcess) -> Iterator[DelayProxy]:
    """The node behind a proxy a test can cut its clients off with (`black_hole`)."""
    with DelayProxy(node.address) as proxy:
        yield proxy


def test_a_client_gone_loses_its_ephemeral_pools_after_the_lease_and_the_rest_after_the_grace(
    node_factory: NodeFactory,
) -> None:
    node = node_factory.start("node1", extra_flags=("--metrics", "127.0.0.1:0"))
    set_terms(node, lease=1, grace=6)
    with SyncClient(node.address, "gone") as gone:
        ephemeral, persistent = gone.new_pool(), gone.new_pool(persistent=True)
        assert gone.put_many(ephemeral, [(1, n, page(n)) for n in range(2)]) == [True] * 2
        assert gone.put_many(persistent, [(2, n, page(n)) for n in range(3)]) == [True] * 3
    # Closed without destroying its pools: the keepalives stop, the node stops seeing it.
    wait_for(lambda: expired(node)["client_expired_eph_pools"] == 1, what="ephemeral pool gone")
    stats = stats_of(node)
    assert (stats["pool_count"], stats["client_count"], stats["pers_zpages"]) == (1, 1, 3)
    assert stats["client_expired"] == 0
    wait_for(lambda: expired(node)["client_expired"] == 1, what="persistent pool gone", timeout=15)
    stats = stats_of(node)
    assert (stats["pool_count"], stats["client_count"], stats["pers_zpages"]) == (0, 0, 0)
    assert expired(node) == {
        "client_expired": 1,
        "client_expired_eph_pools": 1,
        "client_expired_pers_pools": 1,
        "client_expired_pages": 5,
    }
    log = node.log()
    assert "destroyed its ephemeral pools [0] and persistent pools [] (2 pages)" in log
    assert (
        "client 'local:local/gone' unseen for " in log
        and "destroyed its ephemeral pools [] and persistent pools [1] (3 pages): it holds no "
        "pool any more"
        in log
    )
    with urllib.request.urlopen(f"http://{node.ready['metrics']}/metrics", timeout=5) as answer:
        metrics = answer.read().decode()
    assert 'ramster_client_expired_total{node="node1"} 1.0\n' in metrics
    assert 'ramster_client_expired_pages_total{node="node1"} 5.0\n' in metrics


def test_an_open_client_keeps_its_pools_past_the_grace_however_idle(node: NodeProcess) -> None:
    set_terms(node, lease=1, grace=2)
    with SyncClient(node.address, "kept") as kept:
        ephemeral, persistent = kept.new_pool(), kept.new_pool(persistent=True)
        assert kept.put(ephemeral, 1, 0, page(1)) and kept.put(persistent, 2, 0, page(2))
        # A client idle as long as `kept`, but closed: when it is gone, so would `kept` be.
        with SyncClient(node.address, "control") as control:
            control.new_pool()
            control.new_pool(persistent=True)
        wait_for(lambda: expired(node)["client_expired"] == 1, what="control gone")
        assert kept.get(ephemeral, 1, 0, free=False) == page(1)
        assert kept.get(persistent, 2, 0) == page(2)
    assert expired(node)["client_expired_pers_pools"] == 1  # control's, not kept's


def test_a_frontswap_cut_off_inside_the_grace_gets_its_pages_back(
    node: NodeProcess, proxied: DelayProxy
) -> None:
    set_terms(node, lease=1, grace=60)
    frontswap = Frontswap(proxied.address, client_name="swapper", timeout=1.0)
    cleancache = Cleancache(proxied.address, client_name="cacher", timeout=1.0)
    try:
        assert frontswap.wait_ready(10) and cleancache.wait_ready(10)
        frontswap.init(0, 64)
        assert all(frontswap.store(0, n, page(n)) for n in range(3))
        fs = cleancache.init_fs()
        cleancache.put_page(fs, 7, 0, page(7))
        proxied.black_hole()  # both processes unreachable: their keepalives do not arrive
        wait_for(lambda: expired(node)["client_expired"] == 1, what="the cacher gone")
        assert stats_of(node)["pers_zpages"] == 3  # inside its grace, the swapper's stay
        proxied.restore()
        assert [frontswap.load(0, n) for n in range(3)] == [page(n) for n in range(3)]
        assert frontswap.counters()["failed_loads"] == 0
        # The cacher's pool is gone: a miss, and its mounts are registered anew on fresh pools.
        assert cleancache.get_page(fs, 7, 0) is None
        wait_for(lambda: "registrations=2" in repr(cleancache), what="cleancache registered anew")
        cleancache.put_page(fs, 7, 0, page(8))
        assert cleancache.get_page(fs, 7, 0) == page(8)
    finally:
        frontswap.close()
        cleancache.close()


def test_names_of_vanished_clients_stop_counting_against_max_clients(
    node_factory: NodeFactory,
) -> None:
    node = node_factory.start("node1", extra_flags=("--max-clients", "2"))
    set_terms(node, lease=1, grace=1)
    for name in ("a", "b"):
        with SyncClient(node.address, name) as client:
            client.new_pool(persistent=True)
    with SyncClient(node.address, "c") as late:
        with pytest.raises(ResourceExhausted) as refused:
            late.new_pool()
        assert refused.value.message == "clients 2 reached max_clients 2"
        wait_for(lambda: expired(node)["client_expired"] == 2, what="a and b gone")
        assert late.new_pool() == 0
    assert stats_of(node)["client_count"] == 1


def test_a_client_back_after_its_pools_expired_never_reaches_the_newer_pool_of_that_id(
    node: NodeProcess, proxied: DelayProxy, caplog: pytest.LogCaptureFixture
) -> None:
    set_terms(node, lease=1, grace=1)
    with (
        SyncClient(proxied.address, "app", timeout=1.0) as stale,
        SyncClient(node.address, "app") as fresh,
    ):
        pool = stale.new_pool()
        assert stale.put(pool, 7, 0, page(7))
        proxied.black_hole()
        wait_for(lambda: expired(node)["client_expired"] == 1, what="the app's pools gone")
        # The same client name, on another connection, gets the same pool id for a new pool.
        assert fresh.new_pool() == pool
        assert fresh.put(pool, 7, 0, page(99))
        proxied.restore()
        for call in (
            lambda: stale.get(pool, 7, 0),
            lambda: stale.put(pool, 7, 0, page(1)),
            lambda: stale.flush_page(pool, 7, 0),
            lambda: stale.flush_object(pool, 7),
            lambda: stale.destroy_pool(pool),
        ):
            with pytest.raises(NotFound) as refused:
                call()
            assert refused.value.message.startswith(
                f"pool_id {pool} of client 'local:local/app' is no longer pool "
            )
            assert refused.value.message.endswith(
                ": it was destroyed or expired (create a new pool)"
            )
        assert fresh.get(pool, 7, 0, free=False) == page(99)
        # Given the id once more, the client says its earlier pool of that id is gone.
        fresh.destroy_pool(pool)
        with caplog.at_level(logging.WARNING, "ramster.client"):
            assert stale.new_pool() == pool
        assert caplog.messages == [
            f"client app: the node gave pool id {pool} again, so the earlier pool {pool} is gone "
            "(the client was unseen past its lease or grace): drop every use of the earlier one"
        ]
        assert stale.get(pool, 7, 0) is None


def test_a_stale_cleancache_never_reads_the_newer_pool_that_got_its_id(
    node: NodeProcess, proxied: DelayProxy
) -> None:
    set_terms(node, lease=1, grace=1)
    cleancache = Cleancache(proxied.address, client_name="app", timeout=1.0)
    try:
        assert cleancache.wait_ready(10)
        fs = cleancache.init_fs()
        cleancache.put_page(fs, 7, 0, page(7))
        proxied.black_hole()
        wait_for(lambda: expired(node)["client_expired"] == 1, what="the app's pool gone")
        with SyncClient(node.address, "app") as fresh:
            pool = fresh.new_pool()
            assert pool == 0  # the id the cleancache's mount had
            assert fresh.put(pool, 7, 0, page(99))
            proxied.restore()
            assert cleancache.get_page(fs, 7, 0) is None
            wait_for(lambda: "registrations=2" in repr(cleancache), what="registered anew")
            cleancache.put_page(fs, 7, 0, page(8))
            assert cleancache.get_page(fs, 7, 0) == page(8)
            assert fresh.get(pool, 7, 0, free=False) == page(99)
    finally:
        cleancache.close()
