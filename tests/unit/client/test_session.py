"""The client's keepalive (`ramster.client._session`): sent at once, then every third of the lease
the node named; a failure is counted and sent again, never raised; `stop` ends it. The node's side
is tests/unit/test_expiry.py, both together tests/integration/test_sessions.py."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from ramster.client._session import FIRST_INTERVAL, KeepAlive
from ramster.errors import Unavailable


class FakeNode:
    """Answers keepalives with `terms`, or raises the next of `failures` first."""

    def __init__(self, terms: tuple[int, int], failures: int = 0) -> None:
        self.terms = terms
        self.failures = failures
        self.calls: list[float] = []

    async def keep_alive(self) -> tuple[int, int]:
        self.calls.append(asyncio.get_running_loop().time())
        if self.failures:
            self.failures -= 1
            raise Unavailable("Tmem/KeepAlive: node unavailable (connection refused)")
        return self.terms


async def until(predicate: object, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.01)


def test_a_keepalive_is_sent_at_once_then_every_third_of_the_lease() -> None:
    async def scenario() -> None:
        node = FakeNode((1, 60))
        keepalive = KeepAlive(node.keep_alive, "app")
        assert (keepalive.terms, keepalive.interval) == (None, FIRST_INTERVAL)
        keepalive.start()
        keepalive.start()  # once: a second start changes nothing
        await until(lambda: len(node.calls) == 3)
        await keepalive.stop()
        assert keepalive.terms == (1, 60)
        assert keepalive.interval == pytest.approx(1 / 3)
        gaps = [later - earlier for earlier, later in itertools.pairwise(node.calls)]
        assert all(1 / 3 <= gap < 1 for gap in gaps), gaps
        assert (keepalive.sent, keepalive.failed) == (3, 0)
        assert repr(keepalive) == "<KeepAlive stopped terms=(1, 60) sent=3 failed=0>"

    asyncio.run(scenario())


def test_a_failed_keepalive_is_sent_again_and_never_raised() -> None:
    async def scenario() -> None:
        node = FakeNode((3, 60), failures=1)
        keepalive = KeepAlive(node.keep_alive, "app")
        keepalive.start()
        await until(lambda: keepalive.terms is not None)
        await keepalive.stop()
        assert (keepalive.sent, keepalive.failed) == (2, 1)
        assert node.calls[1] - node.calls[0] >= FIRST_INTERVAL  # no lease known yet
        assert keepalive.interval == 1.0

    asyncio.run(scenario())
