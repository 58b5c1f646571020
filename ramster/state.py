"""`NodeStatus` and `StateFeed`: what a node reports about itself, and its watchers.

The status says whether the zcache backend is loaded, which generation of it, the ramster flag,
the epoch (new on every process start) and whether the node is shutting down. Frontends watch it
to know when to (re)register. The feed keeps only the latest status: a slow watcher skips
intermediate ones but always sees the newest.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from functools import partial


@dataclass(frozen=True, slots=True)
class NodeStatus:
    node_name: str
    epoch: str
    backend_generation: int
    zcache: bool
    ramster: bool
    shutting_down: bool = False

    def but(self, **changes: object) -> NodeStatus:
        return replace(self, **changes)  # type: ignore[arg-type]


class StateFeed:
    """The latest `NodeStatus`, published to every watcher until the feed is closed."""

    def __init__(self, status: NodeStatus) -> None:
        self._status = status
        self._version = 0
        self._closed = False
        self._changed = asyncio.Condition()

    def __repr__(self) -> str:
        return f"<StateFeed version={self._version} closed={self._closed} {self._status!r}>"

    @property
    def status(self) -> NodeStatus:
        return self._status

    async def publish(self, status: NodeStatus) -> None:
        async with self._changed:
            self._status = status
            self._version += 1
            self._changed.notify_all()

    async def close(self) -> None:
        """End every watch (after it has seen the last status)."""
        async with self._changed:
            self._closed = True
            self._changed.notify_all()

    def _moved_on(self, seen: int) -> bool:
        return self._version != seen or self._closed

    async def watch(self) -> AsyncIterator[NodeStatus]:
        """The current status, then each newer one, until the feed closes."""
        seen = -1
        while True:
            async with self._changed:
                await self._changed.wait_for(partial(self._moved_on, seen))
                if self._version == seen:
                    return
                status, seen = self._status, self._version
            yield status
