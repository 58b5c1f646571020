"""`NodeState` and `StateFeed`: what a node reports about itself, and its watchers; and
`ExportStatus`, what it reports of an export (`ramster export list`).

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
class ExportStatus:
    """An NBD export of a node (`ramster.nbd.exports`), as `Admin/ListExports` reports it.

    name: the export's name, what NBD clients connect to.
    owner: the identity that created it, ``ROLE:NAME``.
    size: bytes, a multiple of 4096.
    pages: 4096-byte blocks the store holds (here or on peers).
    spilled: blocks in the node's spill file.
    """

    name: str
    owner: str
    size: int
    pages: int
    spilled: int


@dataclass(frozen=True, slots=True)
class NodeState:
    """A node's state, as `Admin/GetStats` and `Admin/WatchState` report it.

    node_name: the node's name in the cluster.
    epoch: new on every start of the node process: pages of an older epoch are gone.
    backend_generation: +1 each time the zcache backend loads; its pools start empty.
    zcache: the backend is loaded, so Tmem calls are served.
    ramster: the remote layer is on.
    shutting_down: the node is stopping and takes no new calls.
    """

    node_name: str
    epoch: str
    backend_generation: int
    zcache: bool
    ramster: bool
    shutting_down: bool = False

    def but(self, **changes: object) -> NodeState:
        return replace(self, **changes)  # type: ignore[arg-type]


class StateFeed:
    """The latest `NodeState`, published to every watcher until the feed is closed."""

    def __init__(self, status: NodeState) -> None:
        self._status = status
        self._version = 0
        self._closed = False
        self._changed = asyncio.Condition()

    def __repr__(self) -> str:
        return f"<StateFeed version={self._version} closed={self._closed} {self._status!r}>"

    @property
    def status(self) -> NodeState:
        return self._status

    async def publish(self, status: NodeState) -> None:
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

    async def watch(self) -> AsyncIterator[NodeState]:
        """The current status, then each newer one, until the feed closes."""
        seen = -1
        while True:
            async with self._changed:
                await self._changed.wait_for(partial(self._moved_on, seen))
                if self._version == seen:
                    return
                status, seen = self._status, self._version
            yield status
