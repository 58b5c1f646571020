"""Lazy init end to end: `Frontswap` and `Cleancache` created before their node exists, attached
when its zcache backend loads, detached when it dies, attached again after it restarts, and never
returning a page that is not the one stored."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from ramster.client import Cleancache, Frontswap, InvalidArgument, SyncClient
from tests.support.nodes import NodeFactory, NodeProcess
from tests.support.processes import free_port, wait_for
from tests.support.tcp_proxy import TcpProxy

FS_UUID = uuid.UUID("12345678-1234-5678-1234-567812345678")


def page(n: int) -> bytes:
    return (f"swap page {n:6d} ".encode() * 400)[:4096]


@pytest.fixture
def target() -> str:
    """An address no node serves yet; the tests start one there later."""
    return f"127.0.0.1:{free_port()}"


@pytest.fixture
def frontswap(target: str) -> Iterator[Frontswap]:
    frontend = Frontswap(target, client_name="swapper", timeout=2.0)
    yield frontend
    frontend.close()


@pytest.fixture
def cleancache(target: str) -> Iterator[Cleancache]:
    frontend = Cleancache(target, client_name="cacher", timeout=2.0)
    yield frontend
    frontend.close()


def registered_epoch(frontend: Frontswap | Cleancache) -> str | None:
    backend = frontend.backend
    return backend[0] if backend is not None else None


def test_frontends_attach_late_and_again_after_a_node_restart(
    node_factory: NodeFactory, target: str, frontswap: Frontswap, cleancache: Cleancache
) -> None:
    # No node: swapons and mounts are recorded, pages are dropped as the kernel drops them.
    frontswap.init(0, 4096)
    assert frontswap.store(0, 1, page(1)) is False
    assert frontswap.load(0, 1) is None
    fs = cleancache.init_fs()
    shared = cleancache.init_shared_fs(FS_UUID)
    assert (fs, shared) == (1000, 2000)
    cleancache.put_page(fs, 10, 0, page(10))
    assert cleancache.get_page(fs, 10, 0) is None
    assert frontswap.wait_ready(0.3) is False
    assert repr(frontswap) == (
        f"<Frontswap {target} backend=- registrations=0 "
        "frontend=<Frontswap backend=off types=1 pages=0 writethrough=off>>"
    )

    # The node comes, with its backend off: still nothing registers.
    node = node_factory.start("node1", listen=target, zcache=False)
    assert frontswap.wait_ready(0.5) is False
    assert cleancache.wait_ready(0.1) is False
    assert frontswap.store(0, 1, page(1)) is False

    # Backend on: the recorded swapon and mounts are replayed on the node.
    with SyncClient(target, "admin") as admin:
        assert admin.set_param("zcache", "on")["zcache"] == "on"
        assert frontswap.wait_ready(10) and cleancache.wait_ready(10)
        assert frontswap.backend == cleancache.backend == (node.epoch, 1)
        assert admin.stats()["pool_count"] == 3  # one swap pool, one private, one shared fs
    assert frontswap.store(0, 1, page(1)) is True
    assert frontswap.store(0, 2, page(2)) is True
    assert frontswap.load(0, 2) == page(2)  # exclusive gets: freed on the node
    assert frontswap.curr_pages() == 1
    cleancache.put_page(fs, 10, 0, page(10))
    cleancache.put_page(shared, 11, 0, page(11))
    assert cleancache.get_page(fs, 10, 0) == page(10)
    assert cleancache.get_page(shared, 11, 0) == page(11)

    # SIGKILL: the frontends notice and drop the backend; nothing is lost silently.
    node.kill()
    wait_for(lambda: frontswap.backend is None and cleancache.backend is None, what="detach")
    assert frontswap.store(0, 3, page(3)) is False
    assert cleancache.get_page(shared, 11, 0) is None

    # Restarted on the same port, backend on: a new epoch, so both register anew and replay.
    node = node_factory.start("node1", listen=target)
    wait_for(lambda: registered_epoch(frontswap) == node.epoch, what="frontswap re-registered")
    wait_for(lambda: registered_epoch(cleancache) == node.epoch, what="cleancache re-registered")
    # Slot 1 was stored on the dead node: a failed load, counted, never another page.
    assert frontswap.load(0, 1) is None
    assert frontswap.counters() == {
        "loads": 1,
        "succ_stores": 2,
        "failed_stores": 0,
        "invalidates": 0,
        "failed_loads": 1,
    }
    assert frontswap.store(0, 4, page(4)) is True
    assert frontswap.load(0, 4) == page(4)
    assert cleancache.get_page(fs, 10, 0) is None
    cleancache.put_page(fs, 10, 0, page(10))
    assert cleancache.get_page(fs, 10, 0) == page(10)
    with SyncClient(target, "admin") as admin:
        assert admin.stats()["pool_count"] == 3

    # Closing gives the node's pools back.
    frontswap.close()
    cleancache.close()
    with SyncClient(target, "admin") as admin:
        assert admin.stats()["pool_count"] == 0


def test_a_graceful_stop_detaches_and_a_backend_reload_reattaches(
    node_factory: NodeFactory, target: str, frontswap: Frontswap
) -> None:
    node = node_factory.start("node1", listen=target)
    assert frontswap.wait_ready(10)
    frontswap.init(1, 64)
    assert frontswap.store(1, 5, page(5)) is True
    node.stop()
    wait_for(lambda: frontswap.backend is None, what="detach on SIGTERM")
    assert frontswap.load(1, 5) is None  # no backend: a miss, as in the kernel
    node.start()
    wait_for(lambda: registered_epoch(frontswap) == node.epoch, what="re-registered")
    # The page died with the node's first life: the load fails and is counted.
    assert frontswap.load(1, 5) is None
    assert frontswap.counters()["failed_loads"] == 1
    # Backend switched off and on (no persistent pages are left): a new generation.
    frontswap.invalidate_area(1)
    with SyncClient(target, "admin") as admin:
        admin.set_param("zcache", "off")
        wait_for(lambda: frontswap.backend is None, what="detach on zcache off")
        assert frontswap.store(1, 6, page(6)) is False
        admin.set_param("zcache", "on")
    wait_for(lambda: frontswap.backend == (node.epoch, 2), what="re-registered, generation 2")
    assert frontswap.store(1, 6, page(6)) is True
    assert frontswap.load(1, 6) == page(6)


def test_a_broken_stream_to_a_living_node_keeps_the_swap_pages(
    node_factory: NodeFactory,
) -> None:
    node = node_factory.start("node1")
    proxy = TcpProxy(int(node.address.rpartition(":")[2]))
    frontswap = Frontswap(proxy.address, client_name="swapper", timeout=2.0)
    cleancache = Cleancache(proxy.address, client_name="cacher", timeout=2.0)
    try:
        assert frontswap.wait_ready(10) and cleancache.wait_ready(10)
        frontswap.init(0, 64)
        assert frontswap.store(0, 1, page(1)) is True
        fs = cleancache.init_fs()
        cleancache.put_page(fs, 7, 0, page(7))
        proxy.cut()  # the node lives on, with its epoch and pools
        wait_for(lambda: "registrations=2" in repr(frontswap), what="frontswap back")
        wait_for(lambda: "registrations=2" in repr(cleancache), what="cleancache back")
        assert frontswap.backend == cleancache.backend == (node.epoch, 1)
        # Same backend: the swap page is still there; cleancache's mount got a fresh pool.
        assert frontswap.load(0, 1) == page(1)
        assert frontswap.counters()["failed_loads"] == 0
        assert cleancache.get_page(fs, 7, 0) is None
        cleancache.put_page(fs, 7, 0, page(7))
        assert cleancache.get_page(fs, 7, 0) == page(7)
        with SyncClient(node.address, "admin") as admin:
            assert admin.stats()["pool_count"] == 2  # the old mount's pool was given back
    finally:
        frontswap.close()
        cleancache.close()
        proxy.close()


def test_a_swap_page_of_the_wrong_length_is_refused_and_not_stored(node: NodeProcess) -> None:
    """A uniform page packs to one fill byte: unchecked, it came back as a 4 KiB page."""
    frontswap = Frontswap(node.address, client_name="swapper", timeout=2.0)
    try:
        frontswap.init(0, 16)
        assert frontswap.wait_ready(10)
        refusals = []
        for length in (2, 4095, 4097, 8192, 65536, 1_000_000):
            with pytest.raises(InvalidArgument) as refused:
                frontswap.store(0, 1, b"\x07" * length)
            refusals.append(refused.value.message)
        assert refusals == [
            f"data length {length} != pool page_size 4096"
            for length in (2, 4095, 4097, 8192, 65536, 1_000_000)
        ]
        assert (frontswap.curr_pages(), frontswap.load(0, 1)) == (0, None)
        assert frontswap.store(0, 1, b"\x07" * 4096) is True
        assert frontswap.load(0, 1) == b"\x07" * 4096
    finally:
        frontswap.close()
