"""`Frontswap` and `Cleancache` of a node: the kernel's frontend APIs, usable from the start.

Each wraps the pure frontend of `ramster.frontends` and attaches it to the node lazily
(`ramster.client._attach`): calls made while the node is absent or its zcache backend is off are
dropped as the kernel drops them (stores fail, loads and gets miss, puts vanish) and only swapons
and mounts are remembered, to be replayed once the backend is there. Not here: the frontends'
rules (`ramster.frontends.frontswap`, `ramster.frontends.cleancache`).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ramster import frontends
from ramster.client._attach import Attached, BackendGuard, locked
from ramster.frontends import CleancacheOps, FrontswapOps, SwapIn
from ramster.page import DEFAULT_PAGE_SIZE, caller_codec, check_page_size
from ramster.wire.tls import TLS


class Frontswap(Attached[frontends.Frontswap, FrontswapOps]):
    """frontswap on the node at `target`: persistent pages by (swap type, offset).

    swapin: receives the pages `shrink` brings back; without it `shrink` refuses.
    exclusive_gets: a successful load frees the node's copy (default True).
    has_room: asked with a page count whether `shrink` may bring them back (default: always).
    page_size: bytes per swap page (default 4096).
    codec: how the node packs the pages: ``lz4``, ``zstd`` or ``zstd:LEVEL`` (default: the
        node's, its param codec).
    client_name, timeout, tls, token: as for `Client`.
    """

    def __init__(
        self,
        target: str,
        client_name: str | None = None,
        swapin: SwapIn | None = None,
        exclusive_gets: bool = True,
        has_room: Callable[[int], bool] | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        timeout: float = 5.0,
        *,
        tls: TLS | None = None,
        token: str | os.PathLike[str] | None = None,
        codec: str | None = None,
    ) -> None:
        self._exclusive_gets = exclusive_gets
        self._page_size = check_page_size(page_size)
        self._codec = _codec_text(codec)
        super().__init__(
            frontends.Frontswap(swapin, has_room), target, client_name, timeout, tls, token
        )

    init = locked(frontends.Frontswap.init)
    store = locked(frontends.Frontswap.store)
    load = locked(frontends.Frontswap.load)
    invalidate_page = locked(frontends.Frontswap.invalidate_page)
    invalidate_area = locked(frontends.Frontswap.invalidate_area)
    swapoff = locked(frontends.Frontswap.swapoff)
    curr_pages = locked(frontends.Frontswap.curr_pages)
    shrink = locked(frontends.Frontswap.shrink)
    set_writethrough = locked(frontends.Frontswap.set_writethrough)
    counters = locked(frontends.Frontswap.counters)

    def _new_ops(self, api: BackendGuard) -> FrontswapOps:
        return frontends.TmemFrontswapOps(api, self._exclusive_gets, self._page_size, self._codec)

    def _register(self, ops: FrontswapOps) -> None:
        self._frontend.register_ops(ops)


class Cleancache(Attached[frontends.Cleancache, CleancacheOps]):
    """cleancache on the node at `target`: a victim cache of clean pages by (pool, key, index).

    codec: how the node packs the pages, as for `Frontswap`.
    client_name, timeout, tls, token: as for `Client`.
    """

    def __init__(
        self,
        target: str,
        client_name: str | None = None,
        timeout: float = 5.0,
        *,
        tls: TLS | None = None,
        token: str | os.PathLike[str] | None = None,
        codec: str | None = None,
    ) -> None:
        self._codec = _codec_text(codec)
        super().__init__(frontends.Cleancache(), target, client_name, timeout, tls, token)

    init_fs = locked(frontends.Cleancache.init_fs)
    init_shared_fs = locked(frontends.Cleancache.init_shared_fs)
    put_page = locked(frontends.Cleancache.put_page)
    get_page = locked(frontends.Cleancache.get_page)
    invalidate_page = locked(frontends.Cleancache.invalidate_page)
    invalidate_inode = locked(frontends.Cleancache.invalidate_inode)
    invalidate_fs = locked(frontends.Cleancache.invalidate_fs)
    counters = locked(frontends.Cleancache.counters)

    def _new_ops(self, api: BackendGuard) -> CleancacheOps:
        return frontends.TmemCleancacheOps(api, self._codec)

    def _register(self, ops: CleancacheOps) -> None:
        self._frontend.register_ops(ops)

    def _reattach(self, guard: BackendGuard, ops: CleancacheOps) -> None:
        # The replay gives every mount a new pool: give the old ones back first.
        guard.release()
        self._register(ops)


def _codec_text(codec: str | None) -> str | None:
    """`codec` refused at once if it is no codec: the pool is made only once the node is
    there, too late to tell the caller."""
    checked = caller_codec(codec)
    return None if checked is None else str(checked)
