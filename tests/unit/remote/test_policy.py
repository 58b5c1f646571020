"""When to ship, which classes, and to whom (`ramster.remote.policy`, docs/design.md §4, §5): pure
decisions on plain values, and the exact errors of a bad `RemotifyConfig`. The loop that acts on
them is in tests/unit/remote/."""

from __future__ import annotations

import dataclasses

import pytest

from nodemanager.model import MemberInfo
from ramster.errors import InvalidArgument
from ramster.params import ModuleParams
from ramster.remote.policy import (
    RemotifyConfig,
    bytes_to_ship,
    classes_to_ship,
    placement,
    target_down,
)

ME = 1
NOBODY: frozenset[int] = frozenset()


def member(number: int, free: int, zcache: bool = True, ramster: bool = True) -> MemberInfo:
    return MemberInfo(
        number=number,
        name=f"node{number}",
        address=f"127.0.0.1:{7000 + number}",
        epoch=f"e{number}",
        capacity_bytes=1 << 30,
        free_bytes=free,
        zcache=zcache,
        ramster=ramster,
    )


def members(*infos: MemberInfo) -> dict[int, MemberInfo]:
    return {info.number: info for info in infos}


# -- bytes_to_ship -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("used", "expected"),
    [
        (0, 0),
        (800, 0),  # at the low watermark
        (850, 0),  # between the watermarks: nothing starts here
        (899, 0),
        (900, 0),  # at the high watermark: not above it
        (901, 101),  # above it: down to the low watermark
        (1000, 200),
        (1100, 300),  # over budget (foreign pages arrived): still down to low
    ],
)
def test_bytes_to_ship_around_the_watermarks(used: int, expected: int) -> None:
    assert bytes_to_ship(used, 1000, 0.9, 0.8) == expected


def test_bytes_to_ship_with_fractional_watermarks() -> None:
    # 0.9 * 65536 = 58982.4 and 0.8 * 65536 = 52428.8
    assert bytes_to_ship(58982, 65536, 0.9, 0.8) == 0
    assert bytes_to_ship(58983, 65536, 0.9, 0.8) == 6554
    assert bytes_to_ship(65536, 65536, 0.9, 0.8) == 13107
    assert bytes_to_ship(65536, 65536, 1.0, 0.5) == 0
    assert bytes_to_ship(65537, 65536, 1.0, 0.5) == 32769


# -- classes_to_ship ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ramster", "eph", "pers", "expected"),
    [
        (True, True, True, [False, True]),  # ephemeral first
        (True, True, False, [False]),
        (True, False, True, [True]),
        (True, False, False, []),
        (False, True, True, []),
        (False, True, False, []),
        (False, False, True, []),
        (False, False, False, []),
    ],
)
def test_classes_to_ship(ramster: bool, eph: bool, pers: bool, expected: list[bool]) -> None:
    params = ModuleParams(ramster=ramster, eph_remotify=eph, pers_remotify=pers)
    assert classes_to_ship(params) == expected


# -- placement: the peer a batch goes to ------------------------------------------------------


def pick_target(
    members: dict[int, MemberInfo], me: int, params: ModuleParams, skip: frozenset[int]
) -> int | None:
    """The first peer `placement` names (the one a shipping batch goes to), or None."""
    order = placement(members, me, skip, params.remote_target)
    return order[0] if order else None


def test_a_fixed_target_is_chosen_while_up_and_willing() -> None:
    view = members(member(ME, 900), member(2, 10), member(3, 500))
    assert pick_target(view, ME, ModuleParams(remote_target=2), NOBODY) == 2
    # Free bytes do not matter for a fixed target, even none at all.
    assert pick_target(members(member(2, 0)), ME, ModuleParams(remote_target=2), NOBODY) == 2


@pytest.mark.parametrize(
    ("view", "skip"),
    [
        (members(member(ME, 900), member(3, 500)), NOBODY),  # absent
        (members(member(2, 10, ramster=False), member(3, 500)), NOBODY),  # ramster off
        (members(member(2, 10, zcache=False), member(3, 500)), NOBODY),  # zcache off
        (members(member(2, 10), member(3, 500)), frozenset({2})),  # failed recently
    ],
    ids=["absent", "ramster-off", "zcache-off", "skipped"],
)
def test_a_fixed_target_that_cannot_take_pages_falls_back_to_auto(
    view: dict[int, MemberInfo], skip: frozenset[int]
) -> None:
    # Pages keep moving while the pinned target is down, else persistent puts fail once full.
    assert placement(view, ME, skip, 2) == [3]
    assert target_down(view, ME, 2) is (skip == NOBODY)  # a skipped peer is up, failing lately


def test_a_fixed_target_of_this_node_falls_back_to_auto() -> None:
    view = members(member(ME, 900), member(2, 10))
    assert placement(view, ME, NOBODY, ME) == [2]
    assert target_down(view, ME, ME) is True


def test_auto_and_a_willing_target_are_not_down() -> None:
    view = members(member(ME, 900), member(2, 10))
    assert target_down(view, ME, None) is False
    assert target_down(view, ME, 2) is False


def test_auto_picks_the_peer_with_most_free_bytes() -> None:
    view = members(member(2, 100), member(3, 300), member(4, 200))
    assert pick_target(view, ME, ModuleParams(), NOBODY) == 3


def test_auto_ties_go_to_the_lowest_number() -> None:
    view = members(member(5, 300), member(3, 300), member(4, 300), member(2, 100))
    assert pick_target(view, ME, ModuleParams(), NOBODY) == 3


def test_auto_never_picks_this_node() -> None:
    view = members(member(ME, 10_000), member(2, 100))
    assert pick_target(view, ME, ModuleParams(), NOBODY) == 2
    assert pick_target(members(member(ME, 10_000)), ME, ModuleParams(), NOBODY) is None


def test_auto_skips_failed_and_unwilling_peers() -> None:
    view = members(
        member(2, 900),
        member(3, 800, ramster=False),
        member(4, 700, zcache=False),
        member(5, 600),
        member(6, 0),  # full
    )
    assert pick_target(view, ME, ModuleParams(), frozenset({2})) == 5
    assert pick_target(view, ME, ModuleParams(), frozenset({2, 5})) is None


def test_auto_with_no_peer_is_none() -> None:
    assert pick_target({}, ME, ModuleParams(), NOBODY) is None


def test_placement_orders_every_willing_peer_by_free_bytes_then_number() -> None:
    view = members(
        member(ME, 10_000),  # this node, with the most room: never named
        member(2, 300),
        member(3, 900, ramster=False),
        member(4, 500),
        member(5, 300),
        member(6, 700, zcache=False),
        member(7, 800),
        member(8, 0),  # full
        member(9, 100),
        dataclasses.replace(member(10, 950), draining=True),
        member(11, 600),  # failed lately
    )
    assert placement(view, ME, frozenset({11})) == [7, 4, 2, 5, 9]
    assert placement(view, ME, NOBODY) == [7, 11, 4, 2, 5, 9]


def test_placement_with_a_target_names_it_alone_while_it_is_willing() -> None:
    view = members(member(ME, 900), member(2, 10), member(3, 500), member(4, 0))
    assert placement(view, ME, NOBODY, target=2) == [2]
    assert placement(view, ME, NOBODY, target=4) == [4]  # free bytes do not matter


# -- RemotifyConfig ----------------------------------------------------------------------------


def test_remotify_config_defaults() -> None:
    config = RemotifyConfig()
    assert dataclasses.astuple(config) == (1024, 2 << 20, 2, 0.05, 5.0, 2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.batch_pages = 64  # type: ignore[misc]


def test_remotify_config_accepts_the_smallest_batches() -> None:
    config = RemotifyConfig(batch_pages=64, batch_bytes=256 * 1024, interval=0.001)
    assert (config.batch_pages, config.batch_bytes) == (64, 262144)


@pytest.mark.parametrize("in_flight", [1, 16])
def test_remotify_config_accepts_in_flight_from_1_to_16(in_flight: int) -> None:
    assert RemotifyConfig(in_flight=in_flight).in_flight == in_flight


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"batch_pages": 63}, "batch_pages 63 is invalid: expected an int >= 64"),
        ({"batch_pages": 0}, "batch_pages 0 is invalid: expected an int >= 64"),
        ({"batch_bytes": 262143}, "batch_bytes 262143 is invalid: expected bytes >= 256 KiB"),
        ({"in_flight": 0}, "in_flight 0 is invalid: expected an int in 1..16"),
        ({"in_flight": 17}, "in_flight 17 is invalid: expected an int in 1..16"),
        ({"in_flight": 2.0}, "in_flight 2.0 is invalid: expected an int in 1..16"),
        ({"interval": 0}, "interval 0 is invalid: expected seconds > 0"),
        ({"peer_timeout": -1.0}, "peer_timeout -1.0 is invalid: expected seconds > 0"),
        ({"failure_backoff": 0.0}, "failure_backoff 0.0 is invalid: expected seconds > 0"),
        ({"interval": float("nan")}, "interval nan is invalid: expected seconds > 0"),
    ],
)
def test_remotify_config_is_validated(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        RemotifyConfig(**changes)  # type: ignore[arg-type]
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"batch_pages": 100.5}, "batch_pages 100.5 is invalid: expected an int >= 64"),
        ({"batch_pages": 256.0}, "batch_pages 256.0 is invalid: expected an int >= 64"),
        (
            {"batch_bytes": float(1 << 20)},
            "batch_bytes 1048576.0 is invalid: expected bytes >= 256 KiB",
        ),
    ],
)
def test_remotify_config_batch_sizes_are_ints(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        RemotifyConfig(**changes)  # type: ignore[arg-type]
    assert caught.value.message == message
