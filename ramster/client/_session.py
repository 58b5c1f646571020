"""`KeepAlive`: a client's session with its node, kept while the client is open.

The node destroys the ephemeral pools of a client it has not heard from for its lease
(``client_lease``), and the persistent ones after its grace (``client_grace``). Once a `Client`
has a pool, a task sends `Tmem/KeepAlive` at once, to learn the lease, and then every third of
the lease the last answer named; until a first answer it asks again every `FIRST_INTERVAL`
seconds. A keepalive that fails is logged at debug level and sent again at the next interval,
never raised: the calls the caller makes report what is wrong. Not here: the RPC
(`ramster.client._transport`), the sweep on the node (`ramster.expiry`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from ramster.errors import RamsterError

log = logging.getLogger("ramster.client")

FIRST_INTERVAL = 1.0
"""Seconds between keepalives until the node has named its lease: short enough for the
shortest lease a node takes (1 s) to be learnt in time."""

KEEPALIVES_PER_LEASE = 3
"""A keepalive every third of the lease: two may be lost before the session is."""


class KeepAlive:
    """Sends `keep_alive` (answering (lease, grace) seconds) from `start` until `stop`."""

    def __init__(self, keep_alive: Callable[[], Awaitable[tuple[int, int]]], name: str) -> None:
        self._keep_alive = keep_alive
        self._name = name
        self._task: asyncio.Task[None] | None = None
        self.terms: tuple[int, int] | None = None
        """(lease, grace) in seconds, as the node answered last; None before its first answer."""
        self.sent = 0
        self.failed = 0

    def __repr__(self) -> str:
        state = "running" if self._task is not None else "stopped"
        return f"<KeepAlive {state} terms={self.terms} sent={self.sent} failed={self.failed}>"

    @property
    def interval(self) -> float:
        """Seconds until the next keepalive."""
        if self.terms is None:
            return FIRST_INTERVAL
        return self.terms[0] / KEEPALIVES_PER_LEASE

    def start(self) -> None:
        """Keep the session from now on (once: later calls change nothing)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"ramster-keepalive-{self._name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            self.sent += 1
            try:
                self.terms = await self._keep_alive()
            except RamsterError as error:
                self.failed += 1
                log.debug("client %s: keepalive failed: %s", self._name, error.message)
            await asyncio.sleep(self.interval)
