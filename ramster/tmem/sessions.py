"""Client sessions: when each application client of a node was last seen, and which of its pools
are due to go because it has been gone too long (issue 12, "Client sessions").

A client unseen for longer than its lease loses its ephemeral pools; unseen for longer than its
grace, its persistent pools too. Once a client's last pool is gone the table drops the client, so
its name no longer counts against `max_clients`, and its session goes with it. A client holding
pools it was never seen asking for (pools recovered after a restart) counts as seen at `since`,
when the node began serving.

Pure: times are plain numbers the caller passes in (the node's monotonic clock), and the pools
are read from the `PageTable`, not changed. Not here: destroying the pools (`Tmem.destroy_pool`,
as for `Tmem/DestroyPool`), the loop that sweeps and counts (`ramster.expiry`), nor the clients
that are other nodes (`ramster.holder`: they go after `origin_grace`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ramster.tmem.table import PageTable, application_client


@dataclass(frozen=True, slots=True)
class Expiry:
    """The pools of `client` due to go, by pool id, lowest first: `ephemeral` ones (unseen past
    the lease), `persistent` ones (unseen past the grace); `idle`, the seconds it was unseen.
    `every` says whether these are all its pools: the client leaves the table with them."""

    client: str
    idle: float
    ephemeral: tuple[int, ...]
    persistent: tuple[int, ...]
    every: bool


class Sessions:
    """Last-seen times of a node's application clients, by client name (`owner_name`)."""

    def __init__(self, since: float) -> None:
        self.since = since
        """When clients never seen count as seen: the node began serving."""
        self._seen: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"<Sessions clients={len(self._seen)} since={self.since:.1f}>"

    def __len__(self) -> int:
        return len(self._seen)

    def seen(self, client: str, now: float) -> None:
        """`client` called now (any Tmem call naming it, a keepalive included)."""
        self._seen[client] = now

    def last_seen(self, client: str) -> float:
        """When `client` was seen last (`since` if never)."""
        return self._seen.get(client, self.since)

    def forget(self, client: str) -> None:
        """`client` holds no pool any more: it has no session to keep."""
        self._seen.pop(client, None)

    def due(self, table: PageTable[Any], now: float, lease: float, grace: float) -> list[Expiry]:
        """The pools of `table`'s application clients due to go at `now`: ephemeral ones of
        clients unseen for more than `lease` seconds, persistent ones of clients unseen for more
        than `grace` (a shorter grace acts as the lease). Sessions of clients that hold no pool
        are forgotten on the way: a name that only called (a keepalive, a refused call) keeps
        nothing here."""
        grace = max(grace, lease)
        holding = set()
        due = []
        for client in table.client_names():
            if not application_client(client):
                continue
            holding.add(client)
            idle = now - self._seen.get(client, self.since)
            if idle <= lease:
                continue
            pools = table.client_pools(client)
            ephemeral = tuple(i for i in sorted(pools) if not pools[i].spec.persistent)
            persistent = tuple(i for i in sorted(pools) if pools[i].spec.persistent)
            if idle <= grace:
                persistent = ()
            if ephemeral or persistent:
                every = len(ephemeral) + len(persistent) == len(pools)
                due.append(Expiry(client, idle, ephemeral, persistent, every))
        for client in [client for client in self._seen if client not in holding]:
            del self._seen[client]
        return due
