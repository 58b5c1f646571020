"""Cleancache frontend rules (reference §A2.3) against a recording fake backend."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from ramster.errors import InvalidArgument
from ramster.frontends.cleancache import Cleancache
from ramster.tmem.keys import Oid

PAGE = b"p" * 4096
FS_UUID = uuid.UUID("12345678-1234-5678-1234-567812345678")


class FakeCleancacheOps:
    """Hands out real pool ids 0, 1, 2…, keeps pages in a dict, and records every call."""

    def __init__(self, frontend: Cleancache | None = None, refuse: bool = False) -> None:
        self.frontend = frontend
        self.refuse = refuse
        self.calls: list[tuple[object, ...]] = []
        self.saw_ops_at_init: list[bool] = []
        self.pages: dict[tuple[int, Oid, int], bytes] = {}
        self._next_pool = 0

    def _new_pool(self) -> int:
        if self.frontend is not None:
            self.saw_ops_at_init.append(self.frontend.ops is not None)
        if self.refuse:
            return -1
        self._next_pool += 1
        return self._next_pool - 1

    def init_fs(self, page_size: int) -> int:
        self.calls.append(("init_fs", page_size))
        return self._new_pool()

    def init_shared_fs(self, fs_uuid: uuid.UUID, page_size: int) -> int:
        self.calls.append(("init_shared_fs", fs_uuid, page_size))
        return self._new_pool()

    def get_page(self, pool_id: int, key: Oid, index: int) -> bytes | None:
        self.calls.append(("get_page", pool_id, key, index))
        return self.pages.get((pool_id, key, index))

    def put_page(self, pool_id: int, key: Oid, index: int, page: bytes) -> None:
        self.calls.append(("put_page", pool_id, key, index))
        self.pages[pool_id, key, index] = page

    def invalidate_page(self, pool_id: int, key: Oid, index: int) -> None:
        self.calls.append(("invalidate_page", pool_id, key, index))

    def invalidate_inode(self, pool_id: int, key: Oid) -> None:
        self.calls.append(("invalidate_inode", pool_id, key))

    def invalidate_fs(self, pool_id: int) -> None:
        self.calls.append(("invalidate_fs", pool_id))


def counts(cc: Cleancache) -> tuple[int, int, int, int]:
    c = cc.counters()
    return c["succ_gets"], c["failed_gets"], c["puts"], c["invalidates"]


def test_fake_ids_come_from_the_first_free_slot_of_each_map() -> None:
    cc = Cleancache()
    assert cc.init_fs() == 1000
    assert cc.init_fs() == 1001
    assert cc.init_shared_fs(FS_UUID) == 2000
    assert cc.init_shared_fs(FS_UUID) == 2001
    assert repr(cc) == "<Cleancache backend=off fs=2 shared_fs=2>"


def test_the_33rd_mount_gets_minus_one_and_its_hooks_do_nothing() -> None:
    cc = Cleancache()
    assert [cc.init_fs() for _ in range(32)] == list(range(1000, 1032))
    assert cc.init_fs() == -1
    assert [cc.init_shared_fs(FS_UUID) for _ in range(32)] == list(range(2000, 2032))
    assert cc.init_shared_fs(FS_UUID) == -1
    ops = FakeCleancacheOps()
    cc.register_ops(ops)
    ops.calls.clear()
    cc.put_page(-1, 7, 0, PAGE)
    assert cc.get_page(-1, 7, 0) is None
    cc.invalidate_page(-1, 7, 0)
    cc.invalidate_inode(-1, 7)
    cc.invalidate_fs(-1)
    assert ops.calls == []
    assert counts(cc) == (0, 0, 0, 0)


def test_a_negative_id_is_not_counted_even_without_a_backend() -> None:
    cc = Cleancache()
    cc.put_page(-1, 7, 0, PAGE)
    assert cc.get_page(-1, 7, 0) is None
    assert counts(cc) == (0, 0, 0, 0)


def test_unmount_frees_the_slot_for_the_next_mount() -> None:
    cc = Cleancache()
    assert cc.init_fs() == 1000
    assert cc.init_shared_fs(FS_UUID) == 2000
    cc.invalidate_fs(1000)
    cc.invalidate_fs(2000)
    assert repr(cc) == "<Cleancache backend=off fs=0 shared_fs=0>"
    assert cc.init_fs() == 1000


def test_hooks_before_registration_are_dropped_and_counted_as_the_kernel_does() -> None:
    cc = Cleancache()
    fs = cc.init_fs()
    cc.put_page(fs, 7, 0, PAGE)
    cc.put_page(fs, 7, 1, PAGE)
    assert cc.get_page(fs, 7, 0) is None
    cc.invalidate_page(fs, 7, 0)
    cc.invalidate_inode(fs, 7)
    assert counts(cc) == (0, 1, 2, 0)
    ops = FakeCleancacheOps()
    cc.register_ops(ops)
    assert ops.calls == [("init_fs", 4096)]
    assert cc.get_page(fs, 7, 0) is None
    assert counts(cc) == (0, 2, 2, 0)


def test_register_replays_mounts_before_publishing_ops() -> None:
    cc = Cleancache()
    private = cc.init_fs(page_size=8192)
    shared = cc.init_shared_fs(FS_UUID, page_size=1024)
    ops = FakeCleancacheOps(frontend=cc)
    assert cc.register_ops(ops) is None
    assert ops.calls == [("init_fs", 8192), ("init_shared_fs", FS_UUID, 1024)]
    assert ops.saw_ops_at_init == [False, False]
    assert cc.ops is ops
    cc.put_page(private, 7, 3, b"a" * 8192)
    cc.put_page(shared, 7, 3, b"b" * 1024)
    assert ops.calls[2:] == [("put_page", 0, (7, 0, 0), 3), ("put_page", 1, (7, 0, 0), 3)]
    assert repr(cc) == "<Cleancache backend=on fs=1 shared_fs=1>"


def test_mount_after_registration_initialises_at_once() -> None:
    cc = Cleancache()
    ops = FakeCleancacheOps()
    cc.register_ops(ops)
    assert cc.init_shared_fs(FS_UUID, page_size=2048) == 2000
    assert cc.init_fs() == 1000
    assert ops.calls == [("init_shared_fs", FS_UUID, 2048), ("init_fs", 4096)]


def test_register_returns_the_previous_ops_and_replays_nothing_already_initialised() -> None:
    cc = Cleancache()
    cc.init_fs()
    first, second = FakeCleancacheOps(), FakeCleancacheOps()
    assert cc.register_ops(first) is None
    assert cc.register_ops(second) is first
    assert second.calls == []


def test_unmount_before_registration_is_not_replayed() -> None:
    cc = Cleancache()
    cc.invalidate_fs(cc.init_fs())
    cc.invalidate_fs(cc.init_shared_fs(FS_UUID))
    ops = FakeCleancacheOps()
    cc.register_ops(ops)
    assert ops.calls == []


def test_hooks_reach_the_backend_through_the_real_id() -> None:
    cc = Cleancache()
    ops = FakeCleancacheOps()
    cc.register_ops(ops)
    cc.init_fs()
    fs = cc.init_fs()
    key = (1, 2, 3)
    cc.put_page(fs, key, 5, PAGE)
    assert cc.get_page(fs, key, 5) == PAGE
    assert cc.get_page(fs, key, 6) is None
    cc.invalidate_page(fs, key, 5)
    cc.invalidate_inode(fs, key)
    cc.invalidate_fs(fs)
    assert ops.calls[2:] == [
        ("put_page", 1, key, 5),
        ("get_page", 1, key, 5),
        ("get_page", 1, key, 6),
        ("invalidate_page", 1, key, 5),
        ("invalidate_inode", 1, key),
        ("invalidate_fs", 1),
    ]
    assert counts(cc) == (1, 1, 1, 1)


def test_a_refused_pool_skips_hooks_get_counts_a_miss_put_counts_nothing() -> None:
    cc = Cleancache()
    ops = FakeCleancacheOps(refuse=True)
    cc.register_ops(ops)
    fs = cc.init_fs()
    assert fs == 1000
    cc.put_page(fs, 7, 0, PAGE)
    assert cc.get_page(fs, 7, 0) is None
    cc.invalidate_page(fs, 7, 0)
    cc.invalidate_inode(fs, 7)
    cc.invalidate_fs(fs)
    assert ops.calls == [("init_fs", 4096)]
    assert counts(cc) == (0, 1, 0, 0)


def test_an_index_beyond_32_bits_misses_as_zcache_does() -> None:
    cc = Cleancache()
    ops = FakeCleancacheOps()
    cc.register_ops(ops)
    fs = cc.init_fs()
    ops.calls.clear()
    cc.put_page(fs, 7, 2**32, PAGE)
    assert cc.get_page(fs, 7, 2**32) is None
    cc.invalidate_page(fs, 7, 2**32)
    assert ops.calls == []
    assert counts(cc) == (0, 1, 1, 1)
    cc.put_page(fs, 7, 2**32 - 1, PAGE)
    assert cc.get_page(fs, 7, 2**32 - 1) == PAGE


def test_unregister_then_register_replays_every_mount_including_refused_ones() -> None:
    cc = Cleancache()
    refusing = FakeCleancacheOps(refuse=True)
    cc.register_ops(refusing)
    private = cc.init_fs(page_size=512)
    shared = cc.init_shared_fs(FS_UUID)
    cc.unregister_ops()
    assert cc.ops is None
    assert repr(cc) == "<Cleancache backend=off fs=1 shared_fs=1>"
    cc.put_page(private, 7, 0, b"x" * 512)
    assert counts(cc) == (0, 0, 1, 0)
    fresh = FakeCleancacheOps(frontend=cc)
    assert cc.register_ops(fresh) is None
    assert fresh.calls == [("init_fs", 512), ("init_shared_fs", FS_UUID, 4096)]
    assert fresh.saw_ops_at_init == [False, False]
    cc.put_page(shared, 7, 0, PAGE)
    assert fresh.calls[-1] == ("put_page", 1, (7, 0, 0), 0)


def test_unmount_without_a_backend_does_not_reach_a_later_one() -> None:
    cc = Cleancache()
    ops = FakeCleancacheOps()
    cc.register_ops(ops)
    fs = cc.init_fs()
    cc.unregister_ops()
    cc.invalidate_fs(fs)
    assert ops.calls == [("init_fs", 4096)]


def test_a_hook_on_an_unmounted_fake_id_goes_nowhere() -> None:
    cc = Cleancache()
    ops = FakeCleancacheOps()
    cc.register_ops(ops)
    fs = cc.init_fs()
    cc.invalidate_fs(fs)
    ops.calls.clear()
    cc.put_page(fs, 7, 0, PAGE)
    assert cc.get_page(fs, 7, 0) is None
    assert ops.calls == []
    assert counts(cc) == (0, 1, 0, 0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda cc: cc.get_page(5, 7, 0),
            "pool_id 5 is invalid: expected a fake id from init_fs (1000..1031) "
            "or init_shared_fs (2000..2031), or negative",
        ),
        (
            lambda cc: cc.put_page(1032, 7, 0, PAGE),
            "pool_id 1032 is invalid: expected a fake id from init_fs (1000..1031) "
            "or init_shared_fs (2000..2031), or negative",
        ),
        (lambda cc: cc.get_page("1000", 7, 0), "pool_id '1000' is invalid: expected an int"),
        (lambda cc: cc.get_page(1000, 7, -1), "index -1 is invalid: expected an int >= 0"),
        (
            lambda cc: cc.invalidate_inode(1000, (1, 2)),
            "key (1, 2) is invalid: expected an int or a tuple of three ints",
        ),
        (lambda cc: cc.put_page(1000, 7, 0, b"x" * 4095), "page length 4095 != fs page_size 4096"),
        (
            lambda cc: cc.init_fs(page_size=4000),
            "page_size 4000 is invalid: expected a power of two in 512..65536",
        ),
        (
            lambda cc: cc.init_shared_fs(str(FS_UUID)),
            f"fs_uuid '{FS_UUID}' is invalid: expected a uuid.UUID",
        ),
    ],
)
def test_bad_arguments_are_named(call: Callable[[Cleancache], object], message: str) -> None:
    cc = Cleancache()
    cc.init_fs()
    with pytest.raises(InvalidArgument) as info:
        call(cc)
    assert info.value.message == message
