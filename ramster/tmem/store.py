"""The seam between tmem semantics and the memory that holds pages (the kernel's "PAM" ops).

A page store turns page bytes into a *slot*, an int the tmem core keeps in its object index,
and back. It owns admission, its memory budget and eviction; the tmem core owns keys, pools and
the rules of put/get/flush. When a store evicts, it hands back the *backrefs* the core gave it
so the core can forget those keys. Implementations: `ramster.zcache.ZCache` (compressed, the real
one) and `ramster.zcache.PlainStore` (uncompressed reference). Both pass one contract suite.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from ramster.page import LZ4_CODEC, Codec, PackedPage

NO_EVICTIONS: tuple[int, ...] = ()


class RejectReason(enum.Enum):
    """Why a put was refused (by the store, or before it); a refused put is a normal outcome,
    not an error."""

    COMPRESS_POOR = "compress_poor"
    MEAN_COMPRESS_POOR = "mean_compress_poor"
    NO_SPACE = "no_space"
    NO_REPLICA = "no_replica"  # persistent_copies: no peer stored the page's other copy
    QUOTA = "quota"  # a new key past its identity's quota (`ramster.tmem.quota`)


@dataclass(frozen=True, slots=True)
class Created:
    """The page is stored in `slot`; storing it evicted the pages whose backrefs are listed."""

    slot: int
    evicted: tuple[int, ...] = NO_EVICTIONS


@dataclass(frozen=True, slots=True)
class Rejected:
    """The page was not stored, for `reason`."""

    reason: RejectReason
    evicted: tuple[int, ...] = NO_EVICTIONS


class PageStore(Protocol):
    """What the tmem core needs from the memory that holds pages."""

    def create(
        self,
        data: bytes | PackedPage,
        persistent: bool,
        version: int,
        backref: int,
        remotable: bool = True,
        codec: Codec = LZ4_CODEC,
        pool_uid: int = 0,
    ) -> Created | Rejected:
        """Store one page, raw (packed with `codec`, its pool's, and the dictionary the store
        trained for pool `pool_uid`, if any) or packed. `backref` is returned if the page is
        evicted later; a `remotable` page (this node's own) may later be taken for shipping to a
        peer."""
        ...

    def read(self, slot: int, page_size: int) -> bytes:
        """The page in `slot`, exactly `page_size` bytes."""
        ...

    def read_packed(self, slot: int, page_size: int) -> PackedPage:
        """The page in `slot`, packed."""
        ...

    def version(self, slot: int) -> int:
        """The version given to `create` for the page now in `slot`."""
        ...

    def backref(self, slot: int) -> int:
        """The backref given to `create` for the page now in `slot`."""
        ...

    def oldest_remotable(self, persistent: bool, max_pages: int) -> list[int]:
        """Up to `max_pages` remotable pages of a class, oldest put first, taken out of the
        shipping order (`requeue` puts back those that could not be shipped)."""
        ...

    def requeue(self, slot: int) -> None:
        """Return a page taken by `oldest_remotable` to the shipping order."""
        ...

    def free(self, slot: int) -> None:
        """Forget the page in `slot`; the slot may be reused."""
        ...

    def charge(self, nbytes: int) -> None:
        """Account `nbytes` (negative to release) of the core's own per-object metadata."""
        ...

    def reserve(self, nbytes: int) -> tuple[int, ...] | None:
        """Account `nbytes` of metadata only if they fit the budget, evicting ephemeral pages
        as a put would: the evicted backrefs, or None (nothing charged, nothing evicted) if
        they do not fit even with every ephemeral page gone."""
        ...

    def counters(self) -> dict[str, int]:
        """The store's counters by their kernel names."""
        ...

    def forget_pool(self, pool_uid: int) -> None:
        """Pool `pool_uid` is gone (its pages freed): drop what the store kept for it."""
        ...
