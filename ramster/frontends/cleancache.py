"""The cleancache frontend of Linux 3.10, with lazy initialisation (reference §A2.2, §A2.3).

A filesystem (any cache of clean pages) mounts with `init_fs` / `init_shared_fs` and gets a *fake*
pool id, 1000+i or 2000+i for slot i of 32. Until a backend registers, hooks are dropped and only
the mounts are remembered; `register_ops` replays them and maps each fake id to the backend's real
pool id before any hook can reach the backend. Not here: what a backend does with the pages
(`ramster.frontends.shims` maps the ops onto tmem), nor the tmem rules (`ramster.tmem`).

Beyond the kernel: `unregister_ops` (a node restart), so the next registration replays every mount;
the page size is kept per mount and replayed with it.
"""

from __future__ import annotations

import uuid

from ramster.errors import InvalidArgument
from ramster.frontends.ops import CleancacheOps
from ramster.page import check_page_size
from ramster.tmem.keys import U32_MAX, Oid, OidLike, as_oid

MAX_INITIALIZABLE_FS = 32
FAKE_FS_POOLID_OFFSET = 1000
FAKE_SHARED_FS_POOLID_OFFSET = 2000
FS_UNKNOWN = -2
"""Slot state: free."""
FS_NO_BACKEND = -1
"""Slot state: mounted, waiting for a backend to give it a real pool id."""


class _SlotMap:
    """One of the kernel's two maps (private or shared): per slot its pool id or state,
    and what a replay needs: the fs UUID (shared slots only) and the page size."""

    __slots__ = ("offset", "page_sizes", "poolids", "uuids")

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.poolids = [FS_UNKNOWN] * MAX_INITIALIZABLE_FS
        self.uuids: list[uuid.UUID | None] = [None] * MAX_INITIALIZABLE_FS
        self.page_sizes = [0] * MAX_INITIALIZABLE_FS

    def in_use(self) -> list[int]:
        return [i for i, poolid in enumerate(self.poolids) if poolid != FS_UNKNOWN]

    def free_slot(self) -> int | None:
        return next((i for i, poolid in enumerate(self.poolids) if poolid == FS_UNKNOWN), None)

    def fill(self, i: int, poolid: int, fs_uuid: uuid.UUID | None, page_size: int) -> None:
        self.poolids[i] = poolid
        self.uuids[i] = fs_uuid
        self.page_sizes[i] = page_size


class Cleancache:
    """cleancache as a filesystem sees it: fake pool ids, hooks, and a backend that may come
    later."""

    def __init__(self) -> None:
        self._ops: CleancacheOps | None = None
        self._private = _SlotMap(FAKE_FS_POOLID_OFFSET)
        self._shared = _SlotMap(FAKE_SHARED_FS_POOLID_OFFSET)
        self._counters = dict.fromkeys(("succ_gets", "failed_gets", "puts", "invalidates"), 0)

    def __repr__(self) -> str:
        backend = "on" if self._ops is not None else "off"
        return (
            f"<Cleancache backend={backend} fs={len(self._private.in_use())} "
            f"shared_fs={len(self._shared.in_use())}>"
        )

    @property
    def ops(self) -> CleancacheOps | None:
        """The registered backend, or None."""
        return self._ops

    def counters(self) -> dict[str, int]:
        """`succ_gets`, `failed_gets`, `puts`, `invalidates`, counted as the kernel counts them."""
        return dict(self._counters)

    # -- mounts and the backend --------------------------------------------------------------

    def init_fs(self, page_size: int = 4096) -> int:
        """Mount a private fs: its fake pool id, or -1 when all 32 slots are taken."""
        return self._mount(self._private, None, page_size)

    def init_shared_fs(self, fs_uuid: uuid.UUID, page_size: int = 4096) -> int:
        """Mount an fs shared by UUID: its fake pool id, or -1 when all 32 slots are taken."""
        if not isinstance(fs_uuid, uuid.UUID):
            raise InvalidArgument.field("fs_uuid", fs_uuid, "a uuid.UUID")
        return self._mount(self._shared, fs_uuid, page_size)

    def _mount(self, slots: _SlotMap, fs_uuid: uuid.UUID | None, page_size: int) -> int:
        check_page_size(page_size)
        i = slots.free_slot()
        if i is None:
            return -1
        ops = self._ops
        real = FS_NO_BACKEND if ops is None else _init_backend(ops, fs_uuid, page_size)
        slots.fill(i, real, fs_uuid, page_size)
        return slots.offset + i

    def invalidate_fs(self, pool_id: int) -> None:
        """Unmount: free the slot and have the backend destroy the pool, if there is one."""
        if self._fs_disabled(pool_id):
            return
        slots, i = self._slot(pool_id)
        real = slots.poolids[i]
        slots.fill(i, FS_UNKNOWN, None, 0)
        # A refused or never-created pool (negative id) has nothing to destroy, as zcache and
        # Xen check before destroying.
        if self._ops is not None and real >= 0:
            self._ops.invalidate_fs(real)

    def register_ops(self, ops: CleancacheOps) -> CleancacheOps | None:
        """Make `ops` the backend after giving every waiting mount a real pool id; return the
        previous backend."""
        # Ids are published together and only after every init succeeded, and ops only after
        # the ids: a hook never reaches a backend through a slot that still says FS_NO_BACKEND.
        replayed = [
            (slots, i, _init_backend(ops, slots.uuids[i], slots.page_sizes[i]))
            for i in range(MAX_INITIALIZABLE_FS)
            for slots in (self._private, self._shared)
            if slots.poolids[i] == FS_NO_BACKEND
        ]
        for slots, i, real in replayed:
            slots.poolids[i] = real
        previous, self._ops = self._ops, ops
        return previous

    def unregister_ops(self) -> None:
        """The backend went away (e.g. its node restarted): drop it and mark every mount as
        waiting, so the next `register_ops` gives each a pool on the new backend."""
        self._ops = None
        for slots in (self._private, self._shared):
            for i in slots.in_use():
                slots.poolids[i] = FS_NO_BACKEND

    # -- hooks -------------------------------------------------------------------------------

    def get_page(self, pool_id: int, key: OidLike, index: int) -> bytes | None:
        """The page if the backend has it, else None."""
        oid = _check_key(key, index)
        if self._fs_disabled(pool_id):
            return None
        route = self._route(pool_id)
        page = None
        # The kernel passes any index on and zcache/Xen miss above 32 bits; we stop it here.
        if route is not None and index <= U32_MAX:
            ops, real = route
            page = ops.get_page(real, oid, index)
        self._counters["succ_gets" if page is not None else "failed_gets"] += 1
        return page

    def put_page(self, pool_id: int, key: OidLike, index: int, page: bytes) -> None:
        """Offer a clean page; the backend may keep it or not."""
        oid = _check_key(key, index)
        if self._fs_disabled(pool_id):
            return
        self._check_length(pool_id, page)
        if self._ops is None:
            self._counters["puts"] += 1
            return
        route = self._route(pool_id)
        if route is None:
            return
        if index <= U32_MAX:
            ops, real = route
            ops.put_page(real, oid, index, page)
        self._counters["puts"] += 1

    def invalidate_page(self, pool_id: int, key: OidLike, index: int) -> None:
        """Forget one page (its data changed or is gone)."""
        oid = _check_key(key, index)
        if self._fs_disabled(pool_id):
            return
        route = self._route(pool_id)
        if route is None:
            return
        if index <= U32_MAX:
            ops, real = route
            ops.invalidate_page(real, oid, index)
        self._counters["invalidates"] += 1

    def invalidate_inode(self, pool_id: int, key: OidLike) -> None:
        """Forget every page of one file (not counted, as in the kernel)."""
        oid = as_oid(key, "key")
        if self._fs_disabled(pool_id):
            return
        route = self._route(pool_id)
        if route is not None:
            ops, real = route
            ops.invalidate_inode(real, oid)

    # -- internals ---------------------------------------------------------------------------

    def _fs_disabled(self, pool_id: int) -> bool:
        """True for a negative id (no slot was free, or unmounted): every hook is a no-op."""
        if not isinstance(pool_id, int) or isinstance(pool_id, bool):
            raise InvalidArgument.field("pool_id", pool_id, "an int")
        return pool_id < 0

    def _slot(self, pool_id: int) -> tuple[_SlotMap, int]:
        for slots in (self._private, self._shared):
            if 0 <= pool_id - slots.offset < MAX_INITIALIZABLE_FS:
                return slots, pool_id - slots.offset
        raise InvalidArgument.field(
            "pool_id",
            pool_id,
            f"a fake id from init_fs ({_id_range(self._private)}) "
            f"or init_shared_fs ({_id_range(self._shared)}), or negative",
        )

    def _route(self, pool_id: int) -> tuple[CleancacheOps, int] | None:
        """The backend and real pool id a hook goes to, or None when it goes nowhere."""
        slots, i = self._slot(pool_id)
        real = slots.poolids[i]
        if self._ops is None or real < 0:
            return None
        return self._ops, real

    def _check_length(self, pool_id: int, page: bytes) -> None:
        slots, i = self._slot(pool_id)
        size = slots.page_sizes[i]
        if slots.poolids[i] != FS_UNKNOWN and len(page) != size:
            raise InvalidArgument(f"page length {len(page)} != fs page_size {size}")


def _check_key(key: OidLike, index: int) -> Oid:
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise InvalidArgument.field("index", index, "an int >= 0")
    return as_oid(key, "key")


def _init_backend(ops: CleancacheOps, fs_uuid: uuid.UUID | None, page_size: int) -> int:
    """The real pool id `ops` gives a mount (negative if it refuses)."""
    if fs_uuid is None:
        return ops.init_fs(page_size)
    return ops.init_shared_fs(fs_uuid, page_size)


def _id_range(slots: _SlotMap) -> str:
    return f"{slots.offset}..{slots.offset + MAX_INITIALIZABLE_FS - 1}"
