"""Hands view changes to the node's callbacks: one at a time, in the order they happened.

Both membership backends queue a snapshot per change here; one task awaits the callbacks in turn, so
a slow callback delays later ones but never the watch that produces them, and a callback never runs
concurrently with another. An exception in a callback is logged and delivery goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable

from nodemanager.model import MemberInfo, MembersChanged, ParamsChanged, QuotasChanged

log = logging.getLogger("nodemanager.membership")

_Item = tuple[str, Callable[[], Awaitable[None]]]


class Notifier:
    """A queue of snapshots and the task that delivers them; `close` drops what is left."""

    def __init__(
        self, on_members: MembersChanged, on_params: ParamsChanged, on_quotas: QuotasChanged
    ) -> None:
        self._on_members = on_members
        self._on_params = on_params
        self._on_quotas = on_quotas
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._task = asyncio.create_task(self._run(), name="membership-callbacks")
        self.delivered = 0

    def __repr__(self) -> str:
        return f"<Notifier queued={self._queue.qsize()} delivered={self.delivered}>"

    def members(self, members: dict[int, MemberInfo]) -> None:
        self._queue.put_nowait(("members", functools.partial(self._on_members, dict(members))))

    def params(self, params: dict[str, str]) -> None:
        self._queue.put_nowait(("params", functools.partial(self._on_params, dict(params))))

    def quotas(self, quotas: dict[str, str]) -> None:
        self._queue.put_nowait(("quotas", functools.partial(self._on_quotas, dict(quotas))))

    async def drain(self) -> None:
        """Return once every snapshot queued so far has been delivered."""
        await self._queue.join()

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            kind, call = await self._queue.get()
            try:
                await call()
            except Exception:
                log.exception("the on_%s callback failed; delivering the next change", kind)
            finally:
                self.delivered += 1
                self._queue.task_done()
