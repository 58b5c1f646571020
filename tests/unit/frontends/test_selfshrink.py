"""Frontswap self-shrinking (reference §A6.3): the policy, and the loop driven by a fake clock."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from ramster.errors import InvalidArgument
from ramster.frontends import (
    Frontswap,
    SelfShrinkConfig,
    SelfShrinkPolicy,
    TmemFrontswapOps,
    run_selfshrink,
)
from ramster.tmem import PageTable
from ramster.tmem.host import Tmem
from ramster.tmem.local import LocalClient
from ramster.zcache import PlainStore


def ticks(policy: SelfShrinkPolicy, pages: list[int]) -> list[int | None]:
    return [policy.tick(n) for n in pages]


def test_shrinking_starts_on_the_third_tick_without_growth_then_runs_every_tick() -> None:
    policy = SelfShrinkPolicy()
    assert ticks(policy, [100, 100, 100, 100, 95, 91]) == [None, None, None, 95, 91, 87]


def test_growth_resets_the_inertia() -> None:
    policy = SelfShrinkPolicy()
    assert ticks(policy, [100, 100, 101, 90, 90, 90]) == [None, None, None, None, None, 90 - 4]


def test_no_pages_resets_the_inertia() -> None:
    policy = SelfShrinkPolicy()
    assert ticks(policy, [0, 0, 50, 50, 50, 0, 40, 40, 40, 40]) == [
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        38,
    ]


def test_at_or_below_the_hysteresis_everything_goes() -> None:
    policy = SelfShrinkPolicy(SelfShrinkConfig(hysteresis=20, inertia=1))
    assert ticks(policy, [21, 21, 20]) == [None, 20, 0]


def test_the_config_shapes_target_and_inertia() -> None:
    policy = SelfShrinkPolicy(SelfShrinkConfig(hysteresis=4, inertia=2))
    assert ticks(policy, [100, 100, 100, 75]) == [None, None, 75, 57]
    assert repr(policy) == "<SelfShrinkPolicy last_pages=75 inertia_counter=0>"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"interval": 0}, "interval 0 is invalid: expected seconds > 0"),
        ({"interval": -1.5}, "interval -1.5 is invalid: expected seconds > 0"),
        ({"interval": "5"}, "interval '5' is invalid: expected seconds > 0"),
        ({"hysteresis": 0}, "hysteresis 0 is invalid: expected an int >= 1"),
        ({"inertia": 0}, "inertia 0 is invalid: expected an int >= 1"),
        ({"inertia": 2.0}, "inertia 2.0 is invalid: expected an int >= 1"),
    ],
)
def test_bad_config_is_named(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        SelfShrinkConfig(**fields)  # type: ignore[arg-type]
    assert info.value.message == message


def test_config_is_frozen_with_the_kernel_defaults() -> None:
    config = SelfShrinkConfig()
    assert (config.interval, config.hysteresis, config.inertia) == (5.0, 20, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.inertia = 1  # type: ignore[misc]


def test_a_negative_page_count_is_refused() -> None:
    with pytest.raises(InvalidArgument) as info:
        SelfShrinkPolicy().tick(-1)
    assert info.value.message == "curr_pages -1 is invalid: expected an int >= 0"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class ScriptedSwap:
    """Reports the scripted page counts, one per tick, and records the shrink targets."""

    def __init__(self, pages: list[int]) -> None:
        self.pages = pages
        self.targets: list[int] = []

    def curr_pages(self) -> int:
        return self.pages.pop(0)

    def shrink(self, target_pages: int) -> int:
        self.targets.append(target_pages)
        return 0


def test_the_loop_sleeps_an_interval_before_each_tick_and_shrinks_to_the_target() -> None:
    clock = FakeClock()
    swap = ScriptedSwap([10, 10, 10, 10, 10])
    config = SelfShrinkConfig(interval=2.5)
    asyncio.run(run_selfshrink(swap, config, sleep=clock.sleep, ticks=5))
    assert clock.sleeps == [2.5] * 5
    assert swap.targets == [0, 0]


def test_the_loop_brings_swapped_pages_home_through_the_real_core() -> None:
    back: list[int] = []
    frontswap = Frontswap(swapin=lambda swap_type, offset, page: back.append(offset))
    frontswap.register_ops(
        TmemFrontswapOps(LocalClient(Tmem(PageTable(PlainStore(memory=64 * 2**20))), "app"))
    )
    frontswap.init(0, 1000)
    for offset in range(100):
        assert frontswap.store(0, offset, offset.to_bytes(2, "little") * 2048)
    clock = FakeClock()
    asyncio.run(run_selfshrink(frontswap, sleep=clock.sleep, ticks=5))
    assert clock.now == 25.0
    assert back == list(range(9))
    assert frontswap.curr_pages() == 91
    assert frontswap.load(0, 9) == (9).to_bytes(2, "little") * 2048
