"""The frontswap frontend of Linux 3.10, with lazy initialisation (reference §A3.2, §A3.3).

Per swap area (`init` = swapon) a bitmap says which slots' data the backend holds, and a count of
them. The rules kept from the kernel: duplicate-store accounting, writethrough, exclusive gets,
`curr_pages`, `shrink` (partial swapoff), and swapons remembered until a backend registers. Not
here: the self-shrink loop (`ramster.frontends.selfshrink`) and the mapping onto tmem
(`ramster.frontends.shims`).

Beyond the kernel: `unregister_ops` (a node restart) keeps the bitmaps and marks every area for
re-initialisation. Bits can therefore be set while no backend is registered, so a store or
invalidation then still clears the bit: a page the caller replaced or dropped must never be
loaded later. And `failed_loads` counts loads the backend missed although the bit was set. A
load the backend cannot serve now although it holds the page (its node or the peer holding it
does not answer) raises the backend's retriable error and keeps the bit: the page is not gone,
and the kernel would fail the swap-in with an I/O error rather than read a slot never written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ramster.errors import FailedPrecondition, InvalidArgument, RamsterError
from ramster.frontends.ops import FrontswapOps

MAX_SWAPFILES = 32

SwapIn = Callable[[int, int, bytes], None]
"""Receives (swap_type, offset, page) for each page `shrink` brings back."""


class _SwapArea:
    """The kernel's `frontswap_map` and `frontswap_pages` of one swap area."""

    __slots__ = ("bitmap", "nr_pages", "pages")

    def __init__(self, nr_pages: int) -> None:
        self.nr_pages = nr_pages
        self.bitmap = bytearray((nr_pages + 7) // 8)
        self.pages = 0

    def test(self, offset: int) -> bool:
        return bool(self.bitmap[offset >> 3] >> (offset & 7) & 1)

    def set(self, offset: int) -> None:
        """Mark a slot present; the caller knows it was not."""
        self.bitmap[offset >> 3] |= 1 << (offset & 7)
        self.pages += 1

    def clear(self, offset: int) -> None:
        """Mark a slot absent; the caller knows it was present."""
        self.bitmap[offset >> 3] &= ~(1 << (offset & 7))
        self.pages -= 1

    def zero(self) -> None:
        self.bitmap = bytearray(len(self.bitmap))
        self.pages = 0

    def present(self) -> Iterator[int]:
        """Offsets whose bit is set, lowest first; bits may be cleared while iterating."""
        for byte_no, byte in enumerate(self.bitmap):
            while byte:
                lowest = byte & -byte
                yield byte_no << 3 | (lowest.bit_length() - 1)
                byte ^= lowest


class Frontswap:
    """frontswap as the swap layer sees it: swap areas, store/load/invalidate, and a backend that
    may come later.

    swapin: where `shrink` hands the pages it brings back; without it `shrink` refuses.
    has_room: asked with a page count whether they may be brought back (the kernel's
        `security_vm_enough_memory_mm`); default: always.
    """

    def __init__(
        self, swapin: SwapIn | None = None, has_room: Callable[[int], bool] | None = None
    ) -> None:
        self._swapin = swapin
        self._has_room = has_room
        self._ops: FrontswapOps | None = None
        self._areas: dict[int, _SwapArea] = {}
        self._need_init: set[int] = set()
        self._writethrough = False
        self._counters = dict.fromkeys(
            ("loads", "succ_stores", "failed_stores", "invalidates", "failed_loads"), 0
        )

    def __repr__(self) -> str:
        backend = "on" if self._ops is not None else "off"
        writethrough = "on" if self._writethrough else "off"
        return (
            f"<Frontswap backend={backend} types={len(self._areas)} pages={self.curr_pages()} "
            f"writethrough={writethrough}>"
        )

    @property
    def ops(self) -> FrontswapOps | None:
        """The registered backend, or None."""
        return self._ops

    def counters(self) -> dict[str, int]:
        """`loads`, `succ_stores`, `failed_stores`, `invalidates` (kernel) and `failed_loads`."""
        return dict(self._counters)

    def curr_pages(self) -> int:
        """Pages the backend holds over all swap areas (`frontswap_curr_pages`)."""
        return sum(area.pages for area in self._areas.values())

    def set_writethrough(self, enabled: bool) -> None:
        """While enabled, report every store as failed so the caller also writes its own copy;
        pages the backend did take are still loaded from it."""
        self._writethrough = enabled

    # -- swap areas and the backend ----------------------------------------------------------

    def init(self, swap_type: int, nr_pages: int) -> None:
        """swapon: attach an area of `nr_pages` slots; the backend prepares now or on register."""
        if not isinstance(swap_type, int) or not 0 <= swap_type < MAX_SWAPFILES:
            raise InvalidArgument.field("swap_type", swap_type, f"an int in 0..{MAX_SWAPFILES - 1}")
        if not isinstance(nr_pages, int) or nr_pages < 1:
            raise InvalidArgument.field("nr_pages", nr_pages, "an int >= 1")
        if swap_type in self._areas:
            raise FailedPrecondition(f"swap_type {swap_type} is already initialised: swapoff first")
        if self._ops is not None:
            self._ops.init(swap_type)
        else:
            self._need_init.add(swap_type)
        self._areas[swap_type] = _SwapArea(nr_pages)

    def swapoff(self, swap_type: int) -> None:
        """Drop every page of the area and detach it."""
        self.invalidate_area(swap_type)
        del self._areas[swap_type]
        self._need_init.discard(swap_type)

    def register_ops(self, ops: FrontswapOps) -> FrontswapOps | None:
        """Make `ops` the backend after initialising every waiting area; return the previous one."""
        # Ops are published last, so no store reaches a backend that has not seen init(type);
        # the pending set is cleared only once every init succeeded.
        for swap_type in sorted(self._need_init):
            ops.init(swap_type)
        self._need_init.clear()
        previous, self._ops = self._ops, ops
        return previous

    def unregister_ops(self) -> None:
        """The backend went away: drop it; every area waits for the next registration. Bitmaps
        stay: the pages may survive on the node, and a load it cannot serve just fails."""
        self._ops = None
        self._need_init = set(self._areas)

    # -- pages -------------------------------------------------------------------------------

    def store(self, swap_type: int, offset: int, page: bytes) -> bool:
        """Offer a page; True if the backend holds it and the caller need not write it."""
        area = self._area(swap_type, offset)
        dup = area.test(offset)
        ops = self._ops
        if ops is None:
            if dup:
                area.clear(offset)
            return False
        if ops.store(swap_type, offset, page):
            self._counters["succ_stores"] += 1
            if not dup:
                area.set(offset)
            return not self._writethrough
        self._counters["failed_stores"] += 1
        if dup:
            # The backend dropped or must drop the older copy: never load it again.
            area.clear(offset)
            ops.invalidate_page(swap_type, offset)
        return False

    def load(self, swap_type: int, offset: int) -> bytes | None:
        """The page stored at the slot, or None if the backend does not hold it. Raises the
        backend's retriable error (`Unavailable`, `DeadlineExceeded`) when it holds the page but
        cannot reach it now: the slot stays stored, to be loaded again."""
        area = self._area(swap_type, offset)
        ops = self._ops
        if ops is None or not area.test(offset):
            return None
        page = ops.load(swap_type, offset)
        if page is None:
            self._counters["failed_loads"] += 1
            return None
        self._counters["loads"] += 1
        if ops.exclusive_gets:
            area.clear(offset)
        return page

    def invalidate_page(self, swap_type: int, offset: int) -> None:
        """The slot was freed: the backend forgets its page."""
        area = self._area(swap_type, offset)
        if not area.test(offset):
            return
        if self._ops is not None:
            self._ops.invalidate_page(swap_type, offset)
            self._counters["invalidates"] += 1
        area.clear(offset)

    def invalidate_area(self, swap_type: int) -> None:
        """The backend forgets every page of the area, which stays attached."""
        area = self._area(swap_type)
        if self._ops is not None:
            self._ops.invalidate_area(swap_type)
        area.zero()

    def shrink(self, target_pages: int) -> int:
        """Partial swapoff: bring pages back through `swapin` until at most `target_pages` are
        left, from one area only; return how many were brought back."""
        if self._swapin is None:
            raise FailedPrecondition(
                "shrink needs somewhere to put the pages it brings back: "
                "pass swapin= to Frontswap()"
            )
        if not isinstance(target_pages, int) or target_pages < 0:
            raise InvalidArgument.field("target_pages", target_pages, "an int >= 0")
        excess = self.curr_pages() - target_pages
        if excess <= 0 or self._ops is None:
            return 0
        for swap_type, area in self._areas.items():
            wanted = min(excess, area.pages)
            if wanted and (self._has_room is None or self._has_room(wanted)):
                return self._unuse(swap_type, area, wanted, self._swapin)
        return 0

    def _unuse(self, swap_type: int, area: _SwapArea, wanted: int, swapin: SwapIn) -> int:
        """try_to_unuse for frontswap pages: lowest offsets first."""
        brought = 0
        for offset in area.present():
            try:
                page = self.load(swap_type, offset)
            except RamsterError as error:
                if not error.retriable:
                    raise
                break  # unreachable now: the pages stay stored, a later shrink tries again
            # A page the backend lost (counted in failed_loads) cannot come back; its owner
            # sees the same miss on its own load.
            if page is None:
                continue
            swapin(swap_type, offset, page)
            self.invalidate_page(swap_type, offset)
            brought += 1
            if brought == wanted:
                break
        return brought

    # -- internals ---------------------------------------------------------------------------

    def _area(self, swap_type: int, offset: int | None = None) -> _SwapArea:
        area = self._areas.get(swap_type)
        if area is None:
            raise InvalidArgument.field(
                "swap_type",
                swap_type,
                f"a swap type given to init() (attached: {list(self._areas)})",
            )
        if offset is not None and (
            not isinstance(offset, int)
            or isinstance(offset, bool)
            or not 0 <= offset < area.nr_pages
        ):
            raise InvalidArgument.field(
                "offset", offset, f"an int in 0..{area.nr_pages - 1} for swap_type {swap_type}"
            )
        return area
