"""The contracts frontends and backends meet at (the kernel's cleancache_ops/frontswap_ops).

`CleancacheOps` and `FrontswapOps` are what a frontend calls once a backend has registered.
`TmemApi` is the page-level surface the shims in `ramster.frontends.shims` turn those ops into:
`ramster.tmem.local.LocalClient` provides it in process, and the gRPC client library provides it
over the wire, so the same frontends run on either.
"""

from __future__ import annotations

import uuid
from typing import Protocol

from ramster.tmem.keys import Oid, OidLike


class CleancacheOps(Protocol):
    """A cleancache backend: ephemeral pools keyed by (file key, page index)."""

    def init_fs(self, page_size: int) -> int:
        """A new private pool; its id (>= 0), or negative if the backend refuses."""
        ...

    def init_shared_fs(self, fs_uuid: uuid.UUID, page_size: int) -> int:
        """The shared pool of `fs_uuid`; its id (>= 0), or negative if the backend refuses."""
        ...

    def get_page(self, pool_id: int, key: Oid, index: int) -> bytes | None: ...

    def put_page(self, pool_id: int, key: Oid, index: int, page: bytes) -> None: ...

    def invalidate_page(self, pool_id: int, key: Oid, index: int) -> None: ...

    def invalidate_inode(self, pool_id: int, key: Oid) -> None: ...

    def invalidate_fs(self, pool_id: int) -> None: ...


class FrontswapOps(Protocol):
    """A frontswap backend: persistent pages keyed by (swap type, offset)."""

    exclusive_gets: bool
    """True when a successful load frees the backend's copy (frontswap_tmem_exclusive_gets)."""

    def init(self, swap_type: int) -> None: ...

    def store(self, swap_type: int, offset: int, page: bytes) -> bool: ...

    def load(self, swap_type: int, offset: int) -> bytes | None: ...

    def invalidate_page(self, swap_type: int, offset: int) -> None: ...

    def invalidate_area(self, swap_type: int) -> None: ...


class TmemApi(Protocol):
    """Raw tmem on one node, as one client sees it (the client library's synchronous surface)."""

    def new_pool(
        self,
        persistent: bool = False,
        shared_uuid: uuid.UUID | None = None,
        page_size: int = 4096,
        codec: str | None = None,
    ) -> int:
        """A new pool; `codec`: ``lz4``, ``zstd`` or ``zstd:LEVEL``, None the node's default."""
        ...

    def put(self, pool: int, oid: OidLike, index: int, data: bytes) -> bool: ...

    def get(
        self, pool: int, oid: OidLike, index: int, free: bool | None = None
    ) -> bytes | None: ...

    def flush_page(self, pool: int, oid: OidLike, index: int) -> bool: ...

    def flush_object(self, pool: int, oid: OidLike) -> bool: ...

    def destroy_pool(self, pool: int) -> None: ...
