"""The zcache shims: cleancache and frontswap ops on top of raw tmem (reference §A4.2).

`TmemCleancacheOps` gives each mount an ephemeral pool; shared mounts get a truly shared pool by
UUID, as the Xen shim does (zcache made them private). `TmemFrontswapOps` keeps every swap area in
one persistent pool and spreads an area over 256 objects ("swizzling"). Both run over anything
with the `TmemApi` surface: `ramster.tmem.local.LocalClient` in process, the gRPC client remotely.

A shim's pool ids belong to one backend lifetime: after the node restarts, register a new shim
rather than the old one again. Not here: the frontends' own rules (`ramster.frontends.cleancache`,
`ramster.frontends.frontswap`).
"""

from __future__ import annotations

import logging
import uuid

from ramster.errors import RamsterError
from ramster.frontends.ops import TmemApi
from ramster.page import DEFAULT_PAGE_SIZE
from ramster.tmem.keys import U32_MAX, Oid

log = logging.getLogger("ramster.frontends")

SWIZ_BITS = 8
SWIZ_MASK = (1 << SWIZ_BITS) - 1


class TmemCleancacheOps:
    """cleancache ops over `api`: one ephemeral pool per mounted fs, packed with `codec`
    (``lz4``, ``zstd``, ``zstd:LEVEL``; None: the backend's default)."""

    def __init__(self, api: TmemApi, codec: str | None = None) -> None:
        self._api = api
        self.codec = codec

    def __repr__(self) -> str:
        return f"<TmemCleancacheOps over {self._api!r}>"

    def init_fs(self, page_size: int) -> int:
        return self._new_pool(None, page_size)

    def init_shared_fs(self, fs_uuid: uuid.UUID, page_size: int) -> int:
        return self._new_pool(fs_uuid, page_size)

    def _new_pool(self, shared_uuid: uuid.UUID | None, page_size: int) -> int:
        try:
            return self._api.new_pool(
                persistent=False, shared_uuid=shared_uuid, page_size=page_size, codec=self.codec
            )
        except RamsterError as exc:
            # A refused pool turns cleancache off for this fs only, as a negative id does.
            log.warning("cleancache: the backend refused a pool: %s", exc.message)
            return -1

    def get_page(self, pool_id: int, key: Oid, index: int) -> bytes | None:
        # The pool's own rule: a private hit frees the page, a shared one keeps it.
        return self._api.get(pool_id, key, index)

    def put_page(self, pool_id: int, key: Oid, index: int, page: bytes) -> None:
        self._api.put(pool_id, key, index, page)

    def invalidate_page(self, pool_id: int, key: Oid, index: int) -> None:
        self._api.flush_page(pool_id, key, index)

    def invalidate_inode(self, pool_id: int, key: Oid) -> None:
        self._api.flush_object(pool_id, key)

    def invalidate_fs(self, pool_id: int) -> None:
        self._api.destroy_pool(pool_id)


class TmemFrontswapOps:
    """frontswap ops over `api`: one persistent pool of `page_size` pages for every swap area,
    created by the first `init`, packed with `codec` (as `TmemCleancacheOps`'). With
    `exclusive_gets` a load frees the stored page."""

    def __init__(
        self,
        api: TmemApi,
        exclusive_gets: bool = True,
        page_size: int = DEFAULT_PAGE_SIZE,
        codec: str | None = None,
    ) -> None:
        self._api = api
        self.exclusive_gets = exclusive_gets
        self.page_size = page_size
        self.codec = codec
        self._pool: int | None = None

    def __repr__(self) -> str:
        return (
            f"<TmemFrontswapOps pool={self._pool} exclusive_gets={self.exclusive_gets} "
            f"over {self._api!r}>"
        )

    def init(self, swap_type: int) -> None:
        if self._pool is not None:
            return
        try:
            self._pool = self._api.new_pool(
                persistent=True, page_size=self.page_size, codec=self.codec
            )
        except RamsterError as exc:
            # As zcache: without a pool every store fails, so the swap layer keeps the pages;
            # the next init tries again.
            log.warning("frontswap: the backend refused a pool: %s", exc.message)

    def store(self, swap_type: int, offset: int, page: bytes) -> bool:
        handle = _swizzle(swap_type, offset)
        if self._pool is None or handle is None:
            return False
        return self._api.put(self._pool, *handle, page)

    def load(self, swap_type: int, offset: int) -> bytes | None:
        handle = _swizzle(swap_type, offset)
        if self._pool is None or handle is None:
            return None
        return self._api.get(self._pool, *handle, free=self.exclusive_gets)

    def invalidate_page(self, swap_type: int, offset: int) -> None:
        handle = _swizzle(swap_type, offset)
        if self._pool is not None and handle is not None:
            self._api.flush_page(self._pool, *handle)

    def invalidate_area(self, swap_type: int) -> None:
        if self._pool is None:
            return
        for low in range(1 << SWIZ_BITS):
            self._api.flush_object(self._pool, ((swap_type << SWIZ_BITS) | low, 0, 0))


def _swizzle(swap_type: int, offset: int) -> tuple[Oid, int] | None:
    """The (oid, index) of a swap slot, or None when the index would not fit in 32 bits.

    Consecutive offsets land in different objects, so no one object grows huge."""
    index = offset >> SWIZ_BITS
    if index > U32_MAX:
        return None
    return ((swap_type << SWIZ_BITS) | (offset & SWIZ_MASK), 0, 0), index
