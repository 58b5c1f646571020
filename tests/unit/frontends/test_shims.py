"""The zcache shims (reference §A4.2): exact tmem calls against a recording fake, then both
frontends end to end on the real tmem core."""

from __future__ import annotations

import logging
import uuid

import pytest

from ramster.errors import ResourceExhausted
from ramster.frontends import Cleancache, Frontswap, TmemCleancacheOps, TmemFrontswapOps
from ramster.tmem import PageTable
from ramster.tmem.host import Tmem
from ramster.tmem.keys import OidLike
from ramster.tmem.local import LocalClient
from ramster.zcache import PlainStore

PAGE = b"p" * 4096
FS_UUID = uuid.UUID("12345678-1234-5678-1234-567812345678")


class FakeTmemApi:
    """Records every call; pools are numbered from 7; `refuse` makes new_pool fail."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []
        self.refuse = False
        self._next_pool = 7
        self.codecs: list[str | None] = []

    def new_pool(
        self,
        persistent: bool = False,
        shared_uuid: uuid.UUID | None = None,
        page_size: int = 4096,
        codec: str | None = None,
    ) -> int:
        self.calls.append(("new_pool", persistent, shared_uuid, page_size))
        self.codecs.append(codec)
        if self.refuse:
            raise ResourceExhausted("client 'app' holds 16 pools: max_pools_per_client is 16")
        self._next_pool += 1
        return self._next_pool - 1

    def put(self, pool: int, oid: OidLike, index: int, data: bytes) -> bool:
        self.calls.append(("put", pool, oid, index))
        return True

    def get(self, pool: int, oid: OidLike, index: int, free: bool | None = None) -> bytes | None:
        self.calls.append(("get", pool, oid, index, free))
        return PAGE

    def flush_page(self, pool: int, oid: OidLike, index: int) -> bool:
        self.calls.append(("flush_page", pool, oid, index))
        return True

    def flush_object(self, pool: int, oid: OidLike) -> bool:
        self.calls.append(("flush_object", pool, oid))
        return True

    def destroy_pool(self, pool: int) -> None:
        self.calls.append(("destroy_pool", pool))


def test_cleancache_ops_map_onto_ephemeral_pools() -> None:
    api = FakeTmemApi()
    ops = TmemCleancacheOps(api)
    assert ops.init_fs(8192) == 7
    assert ops.init_shared_fs(FS_UUID, 4096) == 8
    key = (1, 2, 3)
    assert ops.get_page(7, key, 5) == PAGE
    ops.put_page(7, key, 5, PAGE)
    ops.invalidate_page(7, key, 5)
    ops.invalidate_inode(7, key)
    ops.invalidate_fs(7)
    assert api.calls == [
        ("new_pool", False, None, 8192),
        ("new_pool", False, FS_UUID, 4096),
        ("get", 7, key, 5, None),
        ("put", 7, key, 5),
        ("flush_page", 7, key, 5),
        ("flush_object", 7, key),
        ("destroy_pool", 7),
    ]


def test_a_refused_pool_is_minus_one_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    api = FakeTmemApi()
    api.refuse = True
    ops = TmemCleancacheOps(api)
    with caplog.at_level(logging.WARNING, logger="ramster.frontends"):
        assert ops.init_fs(4096) == -1
        assert ops.init_shared_fs(FS_UUID, 4096) == -1
    assert (
        caplog.messages
        == [
            "cleancache: the backend refused a pool: "
            "client 'app' holds 16 pools: max_pools_per_client is 16"
        ]
        * 2
    )


def test_frontswap_uses_one_persistent_pool_created_by_the_first_init() -> None:
    api = FakeTmemApi()
    ops = TmemFrontswapOps(api)
    assert repr(ops).startswith("<TmemFrontswapOps pool=None exclusive_gets=True over ")
    ops.init(0)
    ops.init(1)
    assert api.calls == [("new_pool", True, None, 4096)]


def test_frontswap_swizzles_offsets_over_256_objects_per_type() -> None:
    api = FakeTmemApi()
    ops = TmemFrontswapOps(api)
    ops.init(3)
    api.calls.clear()
    assert ops.store(3, 0x1234, PAGE) is True
    assert ops.load(3, 0x1234) == PAGE
    ops.invalidate_page(3, 0x1234)
    assert api.calls == [
        ("put", 7, (0x334, 0, 0), 0x12),
        ("get", 7, (0x334, 0, 0), 0x12, True),
        ("flush_page", 7, (0x334, 0, 0), 0x12),
    ]


def test_frontswap_loads_keep_the_page_without_exclusive_gets() -> None:
    api = FakeTmemApi()
    ops = TmemFrontswapOps(api, exclusive_gets=False)
    ops.init(0)
    ops.load(0, 1)
    assert api.calls[-1] == ("get", 7, (1, 0, 0), 0, False)


def test_frontswap_invalidate_area_flushes_the_256_objects_of_the_type() -> None:
    api = FakeTmemApi()
    ops = TmemFrontswapOps(api)
    ops.init(2)
    api.calls.clear()
    ops.invalidate_area(2)
    assert api.calls == [("flush_object", 7, (0x200 + low, 0, 0)) for low in range(256)]


def test_frontswap_refuses_offsets_whose_index_needs_more_than_32_bits() -> None:
    api = FakeTmemApi()
    ops = TmemFrontswapOps(api)
    ops.init(0)
    api.calls.clear()
    assert ops.store(0, 2**40, PAGE) is False
    assert ops.load(0, 2**40) is None
    ops.invalidate_page(0, 2**40)
    assert api.calls == []
    assert ops.store(0, 2**40 - 1, PAGE) is True
    assert api.calls == [("put", 7, (0xFF, 0, 0), 2**32 - 1)]


def test_frontswap_without_a_pool_fails_stores_and_retries_on_the_next_init(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = FakeTmemApi()
    api.refuse = True
    ops = TmemFrontswapOps(api)
    with caplog.at_level(logging.WARNING, logger="ramster.frontends"):
        ops.init(0)
    assert caplog.messages == [
        "frontswap: the backend refused a pool: "
        "client 'app' holds 16 pools: max_pools_per_client is 16"
    ]
    assert ops.store(0, 1, PAGE) is False
    assert ops.load(0, 1) is None
    ops.invalidate_page(0, 1)
    ops.invalidate_area(0)
    api.refuse = False
    ops.init(1)
    assert ops.store(0, 1, PAGE) is True


# -- end to end on the real core -------------------------------------------------------------


def node() -> Tmem:
    return Tmem(PageTable(PlainStore(memory=64 * 2**20)))


def page(n: int) -> bytes:
    return n.to_bytes(2, "little") * 2048


def test_cleancache_end_to_end_with_lazy_registration() -> None:
    tmem = node()
    cc = Cleancache()
    fs = cc.init_fs()
    cc.put_page(fs, 42, 0, PAGE)
    cc.register_ops(TmemCleancacheOps(LocalClient(tmem, "app")))
    assert repr(tmem) == "<Tmem clients=1 pools=1 objects=0 pages=0>"
    cc.put_page(fs, 42, 0, page(0))
    cc.put_page(fs, 42, 1, page(1))
    cc.put_page(fs, 43, 0, page(2))
    assert cc.get_page(fs, 42, 0) == page(0)
    assert cc.get_page(fs, 42, 0) is None
    cc.invalidate_page(fs, 43, 0)
    assert cc.get_page(fs, 43, 0) is None
    cc.invalidate_inode(fs, 42)
    assert cc.get_page(fs, 42, 1) is None
    assert cc.counters() == {"succ_gets": 1, "failed_gets": 3, "puts": 4, "invalidates": 1}
    cc.invalidate_fs(fs)
    assert repr(tmem) == "<Tmem clients=0 pools=0 objects=0 pages=0>"


def test_shared_fs_is_truly_shared_between_clients() -> None:
    tmem = node()
    first, second = Cleancache(), Cleancache()
    first_fs, second_fs = first.init_shared_fs(FS_UUID), second.init_shared_fs(FS_UUID)
    first.register_ops(TmemCleancacheOps(LocalClient(tmem, "a")))
    second.register_ops(TmemCleancacheOps(LocalClient(tmem, "b")))
    first.put_page(first_fs, 9, 0, page(9))
    assert second.get_page(second_fs, 9, 0) == page(9)
    assert second.get_page(second_fs, 9, 0) == page(9)
    assert repr(tmem) == "<Tmem clients=2 pools=2 objects=1 pages=1>"


def test_frontswap_end_to_end_with_exclusive_gets_and_invalidate_area() -> None:
    tmem = node()
    fs = Frontswap()
    fs.init(0, 1000)
    assert fs.store(0, 1, PAGE) is False
    fs.register_ops(TmemFrontswapOps(LocalClient(tmem, "app")))
    fs.init(1, 1000)
    for offset in range(600):
        assert fs.store(0, offset, page(offset)) is True
    assert fs.store(1, 5, page(5)) is True
    assert repr(tmem) == "<Tmem clients=1 pools=1 objects=257 pages=601>"
    assert fs.load(0, 300) == page(300)
    assert fs.load(0, 300) is None
    assert fs.curr_pages() == 600
    fs.invalidate_area(0)
    assert fs.curr_pages() == 1
    assert repr(tmem) == "<Tmem clients=1 pools=1 objects=1 pages=1>"
    assert fs.load(1, 5) == page(5)


def test_a_restarted_node_gets_every_mount_and_swapon_replayed() -> None:
    cc, fs = Cleancache(), Frontswap()
    old = node()
    cc.register_ops(TmemCleancacheOps(LocalClient(old, "app")))
    fs.register_ops(TmemFrontswapOps(LocalClient(old, "app")))
    mount = cc.init_fs()
    fs.init(0, 100)
    fs.store(0, 7, page(7))
    cc.unregister_ops()
    fs.unregister_ops()
    new = node()
    cc.register_ops(TmemCleancacheOps(LocalClient(new, "app")))
    fs.register_ops(TmemFrontswapOps(LocalClient(new, "app")))
    assert repr(new) == "<Tmem clients=1 pools=2 objects=0 pages=0>"
    assert fs.load(0, 7) is None
    assert fs.counters()["failed_loads"] == 1
    assert fs.store(0, 7, page(8)) is True
    assert fs.load(0, 7) == page(8)
    cc.put_page(mount, 1, 0, page(1))
    assert cc.get_page(mount, 1, 0) == page(1)
