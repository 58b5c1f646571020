"""Exponential backoff with full jitter, for the client's retries (the frontends' watcher
reconnecting to a node's state stream, `ramster.client._attach`).

The n-th wait is drawn uniformly from [0, min(cap, base * 2**n)): clients that lost the same node
at the same moment spread their retries over the whole window instead of arriving together each
time it doubles ("full jitter"). The random source is injectable, so tests get exact waits.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable


class Backoff:
    """The waits of one retry loop: `next` for the wait before the next try, `reset` once a try
    succeeded."""

    def __init__(
        self, base: float, cap: float, uniform: Callable[[], float] = random.random
    ) -> None:
        """`uniform` draws from [0, 1) (`random.Random(seed).random` in tests)."""
        if not 0 < base <= cap:
            raise ValueError(f"backoff base {base} and cap {cap}: expected 0 < base <= cap")
        self.base, self.cap, self.uniform = base, cap, uniform
        self.attempt = 0

    def next(self) -> float:
        """Seconds to wait before the next try."""
        # The exponent stops growing once the window reaches the cap: no float overflow in a
        # loop that retries for days.
        window = min(self.cap, math.ldexp(self.base, min(self.attempt, 64)))  # base * 2**n
        self.attempt += 1
        return window * self.uniform()

    def reset(self) -> None:
        self.attempt = 0
