"""The seam between the page table and pages whose bytes live somewhere else (reference §A5.5).

An object slot with the `REMOTE` bit is not a store slot but a *handle*: the page's bytes are
kept elsewhere (on a peer, for RAMster), and the table asks its `Elsewhere` what the handle's
version is, what a get of it answers, and to let go of a page's copies kept elsewhere when the
page goes. The table never learns where a page is or who holds its copies: that is the
implementation's (`ramster.remote.handles.RemoteIndex`). `Nowhere` is the tmem of one node
alone (the kernel's zcache without RAMster): no handle ever exists, so nothing is kept elsewhere.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from ramster.tmem.pool import Pool, TmemObject

REMOTE = 1 << 31
"""An object slot value with this bit set is a handle of a page kept elsewhere, not a store
slot."""


class PageAway(Protocol):
    """What a get of a page kept elsewhere answers: enough for the caller to fetch it and hand
    it back to the code that knows where it is."""

    @property
    def obj_id(self) -> int: ...
    @property
    def index(self) -> int: ...
    @property
    def version(self) -> int: ...


class Elsewhere(Protocol):
    """Pages of this node kept elsewhere, as the page table sees them."""

    def version(self, handle: int) -> int:
        """The version of the page a handle names."""
        ...

    def away(self, obj: TmemObject, index: int, handle: int) -> PageAway:
        """What a get of the page at `handle` (key `index` of `obj`) answers."""
        ...

    def forget(self, obj: TmemObject, index: int, slot: int) -> None:
        """The page at `slot` (a store slot or a handle) of key `index` of `obj` goes: let go of
        every copy of it kept elsewhere (the table frees a store slot itself)."""
        ...

    def forget_object(self, obj: TmemObject) -> None:
        """Every page of `obj` goes: let go of their copies kept elsewhere."""
        ...

    def forget_pool(self, pool: Pool) -> None:
        """Every page of `pool` goes: let go of their copies kept elsewhere."""
        ...

    def counters(self) -> dict[str, int]:
        """Counters of the pages kept elsewhere, by their kernel names."""
        ...


ElsewhereT = TypeVar("ElsewhereT", bound=Elsewhere, covariant=True)
"""The `Elsewhere` a page table was built with: `ramster.remote` reaches its own through it."""


class Nowhere:
    """No page is ever kept elsewhere: a tmem of one node alone."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<Nowhere>"

    def version(self, handle: int) -> int:
        raise AssertionError(f"no page is kept elsewhere, yet slot {handle:#x} is a handle")

    def away(self, obj: TmemObject, index: int, handle: int) -> PageAway:
        raise AssertionError(f"no page is kept elsewhere, yet slot {handle:#x} is a handle")

    def forget(self, obj: TmemObject, index: int, slot: int) -> None:
        pass

    def forget_object(self, obj: TmemObject) -> None:
        pass

    def forget_pool(self, pool: Pool) -> None:
        pass

    def counters(self) -> dict[str, int]:
        return {}
