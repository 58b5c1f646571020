"""`ClientSessions`: the node's application clients that went away lose their pools.

Every Tmem call naming a client that holds pools, and its keepalives (`Tmem/KeepAlive`), note it
seen (`ramster.tmem.sessions`: a dict lookup and a dict store per call). A sweep every
`sweep_interval` (a quarter of the lease, at most `SWEEP_MAX` seconds) destroys, as
`Tmem/DestroyPool` would, the ephemeral pools of clients unseen for `client_lease` seconds and
the persistent ones of clients unseen for `client_grace` (a shared pool only loses the client's
handle). A client whose last pool went leaves the node's table, so its name no longer counts
against `max_clients`. Each expiry is logged and counted (``client_expired*``). Pools recovered
after a restart count as seen when the node began serving (`start`). Not here: which pools are
due (`ramster.tmem.sessions`), the pages a node holds for its peers (they go after
`origin_grace`, `ramster.cluster`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ramster.backend import Backend
from ramster.errors import shown
from ramster.tmem.sessions import Expiry, Sessions

log = logging.getLogger("ramster.sessions")

SWEEP_MAX = 5.0
"""Seconds between sweeps at most: a client is let go within a lease and this."""


class ClientSessions:
    """The sessions of `backend`'s application clients, and the sweep that ends them."""

    def __init__(self, backend: Backend, clock: Callable[[], float] = time.monotonic) -> None:
        self._backend = backend
        self._clock = clock
        self._sessions = Sessions(since=clock())
        self._sweeper: asyncio.Task[None] | None = None
        self.counters = dict.fromkeys(
            (
                "client_expired",
                "client_expired_eph_pools",
                "client_expired_pers_pools",
                "client_expired_pages",
            ),
            0,
        )

    def __repr__(self) -> str:
        running = "sweeping" if self._sweeper is not None else "idle"
        return f"<ClientSessions {running} {self._sessions!r} expired={self.counters}>"

    def seen(self, client: str) -> None:
        """A call named `client` now. Only a client holding pools has a session to keep: a flood
        of calls naming made-up clients stores nothing (`Tmem/NewPool` notes its client once its
        first pool is made)."""
        tmem = self._backend.tmem
        if tmem is not None and tmem.table.client_pools(client):
            self._sessions.seen(client, self._clock())

    def terms(self) -> tuple[int, int]:
        """(lease, grace) in seconds: how long a client may go unseen before its ephemeral,
        then its persistent pools go (the grace is at least the lease)."""
        params = self._backend.params
        return params.client_lease, params.persistent_grace

    @property
    def sweep_interval(self) -> float:
        return min(SWEEP_MAX, self._backend.params.client_lease / 4)

    def start(self) -> None:
        """The node serves from now on: clients holding pools they were never seen asking for
        (recovered ones) count as seen now; sweep until `stop`."""
        self._sessions.since = self._clock()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="ramster-sessions")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None

    def sweep(self) -> list[Expiry]:
        """Destroy the pools due now (none while the node is not serving); what went."""
        backend = self._backend
        if not backend.serving:
            return []
        tmem = backend.loaded()
        lease, grace = self.terms()
        due = self._sessions.due(tmem.table, self._clock(), lease, grace)
        for expiry in due:
            pages = sum(
                tmem.destroy_pool(expiry.client, pool_id)
                for pool_id in (*expiry.ephemeral, *expiry.persistent)
            )
            if expiry.every:
                self._sessions.forget(expiry.client)
            self._count(expiry, pages)
        return due

    def _count(self, expiry: Expiry, pages: int) -> None:
        counters = self.counters
        counters["client_expired"] += expiry.every
        counters["client_expired_eph_pools"] += len(expiry.ephemeral)
        counters["client_expired_pers_pools"] += len(expiry.persistent)
        counters["client_expired_pages"] += pages
        log.info(
            "client %s unseen for %.0f s: destroyed its ephemeral pools %s and persistent pools "
            "%s (%d pages)%s",
            shown(expiry.client),
            expiry.idle,
            list(expiry.ephemeral),
            list(expiry.persistent),
            pages,
            ": it holds no pool any more" if expiry.every else "",
        )

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            self.sweep()
