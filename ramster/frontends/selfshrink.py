"""Frontswap self-shrinking: slowly bring swapped pages home once swapping has stopped growing
(reference §A6.3, §A5.9; the Xen algorithm RAMster copied).

`SelfShrinkPolicy` is the pure decision, one `tick` per interval; `run_selfshrink` is the only
async code of `ramster.frontends`: it sleeps, ticks, and calls `Frontswap.shrink`. Not here: what
shrinking does (`ramster.frontends.frontswap`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from ramster.errors import InvalidArgument

log = logging.getLogger("ramster.frontends")


@dataclass(frozen=True, slots=True)
class SelfShrinkConfig:
    """Settings of the self-shrink loop (the kernel's knobs and defaults).

    interval: seconds between ticks, > 0 (`selfshrink_interval`, 5.0).
    hysteresis: each shrink gives back 1/hysteresis of the pages, and all of them once at most
        this many are left, >= 1 (`frontswap_hysteresis`, 20).
    inertia: ticks without growth before shrinking starts, >= 1 (`frontswap_inertia`, 3).
    """

    interval: float = 5.0
    hysteresis: int = 20
    inertia: int = 3

    def __post_init__(self) -> None:
        if (
            not isinstance(self.interval, int | float)
            or isinstance(self.interval, bool)
            or not self.interval > 0
        ):
            raise InvalidArgument.field("interval", self.interval, "seconds > 0")
        for name in ("hysteresis", "inertia"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidArgument.field(name, value, "an int >= 1")


class SelfShrinkPolicy:
    """The self-shrink state machine: page counts in, shrink targets out."""

    def __init__(self, config: SelfShrinkConfig | None = None) -> None:
        self.config = config or SelfShrinkConfig()
        self._last_pages = 0
        self._inertia_counter = self.config.inertia

    def __repr__(self) -> str:
        return (
            f"<SelfShrinkPolicy last_pages={self._last_pages} "
            f"inertia_counter={self._inertia_counter}>"
        )

    def tick(self, curr_pages: int) -> int | None:
        """The target to shrink to now, or None to leave frontswap alone this tick."""
        if not isinstance(curr_pages, int) or isinstance(curr_pages, bool) or curr_pages < 0:
            raise InvalidArgument.field("curr_pages", curr_pages, "an int >= 0")
        last, self._last_pages = self._last_pages, curr_pages
        if curr_pages == 0 or curr_pages > last:
            self._inertia_counter = self.config.inertia
            return None
        if self._inertia_counter:
            self._inertia_counter -= 1
            if self._inertia_counter:
                return None
        hysteresis = self.config.hysteresis
        if curr_pages <= hysteresis:
            return 0
        return curr_pages - curr_pages // hysteresis


class Shrinkable(Protocol):
    """What the loop drives: a `Frontswap`."""

    def curr_pages(self) -> int: ...

    def shrink(self, target_pages: int) -> int: ...


async def run_selfshrink(
    frontswap: Shrinkable,
    config: SelfShrinkConfig | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ticks: int | None = None,
) -> None:
    """Every `config.interval` seconds, tick the policy and shrink `frontswap` to its target;
    stop after `ticks` ticks, or run until cancelled when None."""
    policy = SelfShrinkPolicy(config)
    done = 0
    while ticks is None or done < ticks:
        await sleep(policy.config.interval)
        done += 1
        curr = frontswap.curr_pages()
        target = policy.tick(curr)
        if target is not None:
            brought = frontswap.shrink(target)
            log.debug("selfshrink: %d pages, target %d, brought back %d", curr, target, brought)
