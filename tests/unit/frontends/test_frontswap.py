"""Frontswap frontend rules (reference §A3.2, §A3.3) against a recording fake backend."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ramster.errors import FailedPrecondition, InvalidArgument, Unavailable
from ramster.frontends.frontswap import Frontswap, SwapIn

PAGE = b"p" * 4096
UNREACHABLE = Unavailable(
    "Tmem/GetPages: node unavailable (keys[0] is a page held by node 2, which did not answer in "
    "time: it is kept, try again)"
)


class FakeFrontswapOps:
    """Keeps pages in a dict; `accept` decides stores; a load of a key in `unreachable` raises
    `UNREACHABLE` (the backend holds the page but cannot reach it now); every call is recorded."""

    def __init__(self, frontend: Frontswap | None = None, exclusive_gets: bool = False) -> None:
        self.frontend = frontend
        self.exclusive_gets = exclusive_gets
        self.accept = True
        self.calls: list[tuple[object, ...]] = []
        self.saw_ops_at_init: list[bool] = []
        self.pages: dict[tuple[int, int], bytes] = {}
        self.unreachable: set[tuple[int, int]] = set()

    def init(self, swap_type: int) -> None:
        self.calls.append(("init", swap_type))
        if self.frontend is not None:
            self.saw_ops_at_init.append(self.frontend.ops is not None)

    def store(self, swap_type: int, offset: int, page: bytes) -> bool:
        self.calls.append(("store", swap_type, offset))
        # A failed duplicate store drops the old copy too, as tmem does.
        self.pages.pop((swap_type, offset), None)
        if self.accept:
            self.pages[swap_type, offset] = page
        return self.accept

    def load(self, swap_type: int, offset: int) -> bytes | None:
        self.calls.append(("load", swap_type, offset))
        if (swap_type, offset) in self.unreachable:
            raise UNREACHABLE
        if self.exclusive_gets:
            return self.pages.pop((swap_type, offset), None)
        return self.pages.get((swap_type, offset))

    def invalidate_page(self, swap_type: int, offset: int) -> None:
        self.calls.append(("invalidate_page", swap_type, offset))
        self.pages.pop((swap_type, offset), None)

    def invalidate_area(self, swap_type: int) -> None:
        self.calls.append(("invalidate_area", swap_type))
        self.pages = {key: page for key, page in self.pages.items() if key[0] != swap_type}


def counts(fs: Frontswap) -> tuple[int, int, int, int, int]:
    c = fs.counters()
    return c["loads"], c["succ_stores"], c["failed_stores"], c["invalidates"], c["failed_loads"]


def registered(
    exclusive_gets: bool = False,
    swapin: SwapIn | None = None,
    has_room: Callable[[int], bool] | None = None,
) -> tuple[Frontswap, FakeFrontswapOps]:
    fs = Frontswap(swapin=swapin, has_room=has_room)
    ops = FakeFrontswapOps(exclusive_gets=exclusive_gets)
    fs.register_ops(ops)
    fs.init(0, 64)
    return fs, ops


def page(n: int) -> bytes:
    return bytes([n]) * 4096


def test_store_load_and_the_page_count() -> None:
    fs, ops = registered()
    assert fs.store(0, 3, page(3)) is True
    assert fs.store(0, 9, page(9)) is True
    assert fs.curr_pages() == 2
    assert fs.load(0, 3) == page(3)
    assert fs.load(0, 4) is None
    assert ("load", 0, 4) not in ops.calls
    assert fs.curr_pages() == 2
    assert counts(fs) == (1, 2, 0, 0, 0)
    assert repr(fs) == "<Frontswap backend=on types=1 pages=2 writethrough=off>"


def test_a_duplicate_store_that_succeeds_is_not_counted_twice() -> None:
    fs, _ = registered()
    fs.store(0, 3, page(1))
    assert fs.store(0, 3, page(2)) is True
    assert fs.curr_pages() == 1
    assert fs.load(0, 3) == page(2)
    assert counts(fs) == (1, 2, 0, 0, 0)


def test_a_duplicate_store_that_fails_drops_the_old_copy() -> None:
    fs, ops = registered()
    fs.store(0, 3, page(1))
    ops.accept = False
    assert fs.store(0, 3, page(2)) is False
    assert ops.calls[-2:] == [("store", 0, 3), ("invalidate_page", 0, 3)]
    assert fs.curr_pages() == 0
    assert fs.load(0, 3) is None
    assert ops.calls[-1] == ("invalidate_page", 0, 3)
    assert counts(fs) == (0, 1, 1, 0, 0)


def test_a_failed_first_store_sets_nothing() -> None:
    fs, ops = registered()
    ops.accept = False
    assert fs.store(0, 3, PAGE) is False
    assert fs.curr_pages() == 0
    assert ops.calls[-1] == ("store", 0, 3)
    assert counts(fs) == (0, 0, 1, 0, 0)


def test_writethrough_reports_failure_but_loads_are_served() -> None:
    fs, ops = registered()
    fs.set_writethrough(True)
    assert repr(fs) == "<Frontswap backend=on types=1 pages=0 writethrough=on>"
    assert fs.store(0, 3, PAGE) is False
    assert fs.curr_pages() == 1
    assert fs.load(0, 3) == PAGE
    ops.accept = False
    assert fs.store(0, 3, PAGE) is False
    assert fs.curr_pages() == 0
    assert counts(fs) == (1, 1, 1, 0, 0)
    fs.set_writethrough(False)
    ops.accept = True
    assert fs.store(0, 3, PAGE) is True


def test_exclusive_gets_clear_the_bit_on_a_successful_load() -> None:
    fs, ops = registered(exclusive_gets=True)
    fs.store(0, 3, PAGE)
    assert fs.load(0, 3) == PAGE
    assert fs.curr_pages() == 0
    assert fs.load(0, 3) is None
    assert ops.calls.count(("load", 0, 3)) == 1
    assert counts(fs) == (1, 1, 0, 0, 0)


def test_exclusive_gets_are_read_at_load_time() -> None:
    fs, ops = registered()
    fs.store(0, 3, PAGE)
    ops.exclusive_gets = True
    assert fs.load(0, 3) == PAGE
    assert fs.curr_pages() == 0


def test_a_load_the_backend_misses_is_counted_and_returns_none() -> None:
    fs, ops = registered()
    fs.store(0, 3, PAGE)
    ops.pages.clear()
    assert fs.load(0, 3) is None
    assert fs.curr_pages() == 1
    assert counts(fs) == (0, 1, 0, 0, 1)


def test_invalidate_page_only_reaches_the_backend_for_present_pages() -> None:
    fs, ops = registered()
    fs.store(0, 3, PAGE)
    fs.invalidate_page(0, 4)
    fs.invalidate_page(0, 3)
    fs.invalidate_page(0, 3)
    assert [c for c in ops.calls if c[0] == "invalidate_page"] == [("invalidate_page", 0, 3)]
    assert fs.curr_pages() == 0
    assert counts(fs) == (0, 1, 0, 1, 0)


def test_invalidate_area_drops_every_page_of_one_type_only() -> None:
    fs, ops = registered()
    fs.init(1, 16)
    for offset in (0, 7, 63):
        fs.store(0, offset, PAGE)
    fs.store(1, 7, PAGE)
    assert fs.curr_pages() == 4
    fs.invalidate_area(0)
    assert ops.calls[-1] == ("invalidate_area", 0)
    assert fs.curr_pages() == 1
    assert fs.load(0, 7) is None
    assert fs.load(1, 7) == PAGE
    assert fs.store(0, 7, PAGE) is True
    assert fs.curr_pages() == 2


def test_swapoff_detaches_the_area() -> None:
    fs, ops = registered()
    fs.store(0, 3, PAGE)
    fs.swapoff(0)
    assert ops.calls[-1] == ("invalidate_area", 0)
    assert fs.curr_pages() == 0
    assert repr(fs) == "<Frontswap backend=on types=0 pages=0 writethrough=off>"
    with pytest.raises(InvalidArgument) as info:
        fs.load(0, 3)
    assert info.value.message == (
        "swap_type 0 is invalid: expected a swap type given to init() (attached: [])"
    )
    fs.init(0, 8)
    assert ops.calls[-1] == ("init", 0)


def test_without_a_backend_stores_fail_uncounted_and_nothing_is_called() -> None:
    fs = Frontswap()
    fs.init(0, 64)
    assert fs.store(0, 3, PAGE) is False
    assert fs.load(0, 3) is None
    fs.invalidate_page(0, 3)
    fs.invalidate_area(0)
    assert fs.curr_pages() == 0
    assert counts(fs) == (0, 0, 0, 0, 0)
    assert repr(fs) == "<Frontswap backend=off types=1 pages=0 writethrough=off>"


def test_register_initialises_pending_types_before_publishing_ops() -> None:
    fs = Frontswap()
    fs.init(2, 8)
    fs.init(0, 8)
    ops = FakeFrontswapOps(frontend=fs)
    assert fs.register_ops(ops) is None
    assert ops.calls == [("init", 0), ("init", 2)]
    assert ops.saw_ops_at_init == [False, False]
    assert fs.ops is ops
    assert fs.store(2, 5, PAGE) is True
    second = FakeFrontswapOps()
    assert fs.register_ops(second) is ops
    assert second.calls == []


def test_swapon_after_registration_initialises_at_once() -> None:
    fs, ops = registered()
    fs.init(1, 8)
    assert ops.calls == [("init", 0), ("init", 1)]


def test_swapoff_before_registration_clears_the_pending_type() -> None:
    fs = Frontswap()
    fs.init(0, 8)
    fs.init(1, 8)
    fs.swapoff(0)
    ops = FakeFrontswapOps()
    fs.register_ops(ops)
    assert ops.calls == [("init", 1)]


def test_invalidate_area_before_registration_keeps_the_type_pending() -> None:
    fs = Frontswap()
    fs.init(0, 8)
    fs.invalidate_area(0)
    ops = FakeFrontswapOps()
    fs.register_ops(ops)
    assert ops.calls == [("init", 0)]


def test_unregister_keeps_bitmaps_and_the_next_registration_replays_every_area() -> None:
    fs, old = registered()
    fs.init(3, 8)
    fs.store(0, 1, page(1))
    fs.store(0, 2, page(2))
    fs.store(3, 4, page(4))
    fs.unregister_ops()
    assert fs.ops is None
    assert fs.curr_pages() == 3
    assert fs.load(0, 1) is None
    old.calls.clear()
    fresh = FakeFrontswapOps(frontend=fs)
    fresh.pages[0, 2] = page(2)
    fs.register_ops(fresh)
    assert fresh.calls == [("init", 0), ("init", 3)]
    assert fresh.saw_ops_at_init == [False, False]
    assert fs.load(0, 1) is None
    assert fs.load(0, 2) == page(2)
    assert counts(fs) == (1, 3, 0, 0, 1)
    assert old.calls == []


def test_without_a_backend_a_store_or_invalidate_still_forgets_a_present_page() -> None:
    fs, _ = registered()
    for offset in (1, 2, 3):
        fs.store(0, offset, page(offset))
    fs.unregister_ops()
    assert fs.store(0, 1, page(9)) is False
    fs.invalidate_page(0, 2)
    assert fs.curr_pages() == 1
    fs.invalidate_area(0)
    assert fs.curr_pages() == 0
    fresh = FakeFrontswapOps()
    fresh.pages = {(0, 1): page(1), (0, 2): page(2), (0, 3): page(3)}
    fs.register_ops(fresh)
    assert [fs.load(0, offset) for offset in (1, 2, 3)] == [None, None, None]
    assert counts(fs) == (0, 3, 0, 0, 0)


def test_shrink_brings_back_the_lowest_offsets_of_the_first_type_in_swapon_order() -> None:
    back: list[tuple[int, int, bytes]] = []
    fs, ops = registered(swapin=lambda t, o, p: back.append((t, o, p)))
    fs.init(1, 64)
    fs.swapoff(0)
    fs.init(0, 64)
    fs.store(0, 9, page(9))
    for offset in (40, 5, 20, 30):
        fs.store(1, offset, page(offset))
    assert fs.shrink(3) == 2
    assert back == [(1, 5, page(5)), (1, 20, page(20))]
    assert ops.calls[-4:] == [
        ("load", 1, 5),
        ("invalidate_page", 1, 5),
        ("load", 1, 20),
        ("invalidate_page", 1, 20),
    ]
    assert fs.curr_pages() == 3
    assert counts(fs) == (2, 5, 0, 2, 0)


def test_shrink_takes_all_of_a_smaller_area_and_stops_there() -> None:
    back: list[tuple[int, int, bytes]] = []
    fs, _ = registered(swapin=lambda t, o, p: back.append((t, o, p)))
    fs.init(1, 64)
    fs.store(0, 1, page(1))
    fs.store(1, 2, page(2))
    fs.store(1, 3, page(3))
    assert fs.shrink(0) == 1
    assert back == [(0, 1, page(1))]
    assert fs.curr_pages() == 2


def test_shrink_skips_types_without_room_and_counts_exclusive_loads() -> None:
    asked: list[int] = []

    def has_room(pages: int) -> bool:
        asked.append(pages)
        return len(asked) > 1

    back: list[tuple[int, int, bytes]] = []
    fs, ops = registered(
        exclusive_gets=True, swapin=lambda t, o, p: back.append((t, o, p)), has_room=has_room
    )
    fs.init(1, 64)
    fs.store(0, 1, page(1))
    fs.store(1, 2, page(2))
    fs.store(1, 3, page(3))
    assert fs.shrink(1) == 2
    assert asked == [1, 2]
    assert back == [(1, 2, page(2)), (1, 3, page(3))]
    assert ("invalidate_page", 1, 2) not in ops.calls
    assert counts(fs) == (2, 3, 0, 0, 0)


def test_shrink_goes_past_pages_the_backend_lost() -> None:
    back: list[tuple[int, int, bytes]] = []
    fs, ops = registered(swapin=lambda t, o, p: back.append((t, o, p)))
    for offset in (1, 2, 3):
        fs.store(0, offset, page(offset))
    del ops.pages[0, 1]
    assert fs.shrink(1) == 2
    assert back == [(0, 2, page(2)), (0, 3, page(3))]
    assert fs.curr_pages() == 1
    assert fs.counters()["failed_loads"] == 1


def test_a_load_the_backend_cannot_serve_now_raises_and_the_slot_stays_stored() -> None:
    fs, ops = registered(exclusive_gets=True)
    fs.store(0, 3, PAGE)
    ops.unreachable.add((0, 3))
    with pytest.raises(Unavailable) as raised:
        fs.load(0, 3)  # not None: the page is not gone, and a swap-in must not read the disk
    assert raised.value is UNREACHABLE
    assert fs.curr_pages() == 1
    assert counts(fs) == (0, 1, 0, 0, 0)
    ops.unreachable.clear()
    assert fs.load(0, 3) == PAGE  # tried again, it loads
    assert fs.curr_pages() == 0


def test_shrink_stops_at_a_page_the_backend_cannot_reach_now() -> None:
    back: list[tuple[int, int, bytes]] = []
    fs, ops = registered(swapin=lambda t, o, p: back.append((t, o, p)))
    for offset in (1, 2, 3):
        fs.store(0, offset, page(offset))
    ops.unreachable.add((0, 2))
    assert fs.shrink(0) == 1
    assert back == [(0, 1, page(1))]
    assert fs.curr_pages() == 2  # the rest stays stored, for a later shrink
    assert fs.counters()["failed_loads"] == 0


def test_shrink_within_target_or_without_a_backend_does_nothing() -> None:
    fs, ops = registered(swapin=lambda t, o, p: None)
    fs.store(0, 1, PAGE)
    assert fs.shrink(1) == 0
    fs.unregister_ops()
    assert fs.shrink(0) == 0
    assert ops.calls == [("init", 0), ("store", 0, 1)]


def test_shrink_without_swapin_is_refused() -> None:
    fs, _ = registered()
    with pytest.raises(FailedPrecondition) as info:
        fs.shrink(0)
    assert info.value.message == (
        "shrink needs somewhere to put the pages it brings back: pass swapin= to Frontswap()"
    )


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda fs: fs.store(0, 64, PAGE),
            InvalidArgument,
            "offset 64 is invalid: expected an int in 0..63 for swap_type 0",
        ),
        (
            lambda fs: fs.load(0, -1),
            InvalidArgument,
            "offset -1 is invalid: expected an int in 0..63 for swap_type 0",
        ),
        (
            lambda fs: fs.invalidate_page(5, 0),
            InvalidArgument,
            "swap_type 5 is invalid: expected a swap type given to init() (attached: [0])",
        ),
        (
            lambda fs: fs.swapoff(5),
            InvalidArgument,
            "swap_type 5 is invalid: expected a swap type given to init() (attached: [0])",
        ),
        (
            lambda fs: fs.init(32, 8),
            InvalidArgument,
            "swap_type 32 is invalid: expected an int in 0..31",
        ),
        (lambda fs: fs.init(1, 0), InvalidArgument, "nr_pages 0 is invalid: expected an int >= 1"),
        (
            lambda fs: fs.init(0, 8),
            FailedPrecondition,
            "swap_type 0 is already initialised: swapoff first",
        ),
        (
            lambda fs: fs.shrink(-1),
            InvalidArgument,
            "target_pages -1 is invalid: expected an int >= 0",
        ),
    ],
)
def test_bad_arguments_are_named(
    call: Callable[[Frontswap], object], error: type[Exception], message: str
) -> None:
    fs, _ = registered(swapin=lambda t, o, p: None)
    with pytest.raises(error) as info:
        call(fs)
    assert str(info.value) == message
