"""`Flushes`: sending the flushes the tree queued for copies on peers (a page put again, flushed,
brought home, or written off), one batch per holder.

A flush for a holder out of the view waits as an orphan (`Peers.orphan`) and goes out when the
holder is introduced again; a flush that fails makes the holder unsure (`Peers.unsure`): it is
sent again before anything is placed there. Flushes carry versions, so one that arrives late
never removes a newer copy. Not here: what queues them (`ramster.remote.shipping`,
`ramster.remote.copies`), the wire (`ramster.rpc.peer_link`).
"""

from __future__ import annotations

import logging
from collections import defaultdict

from ramster.errors import RamsterError
from ramster.remote.handles import OriginTmem, RemoteFlush
from ramster.remote.peers import Peers

log = logging.getLogger("ramster.remote")


class Flushes:
    """Sends the flush queue of a tree to the holders among `peers`."""

    def __init__(self, peers: Peers) -> None:
        self._peers = peers
        self.counters = dict.fromkeys(
            (
                "remote_pages_flushed",
                "remote_page_flushes_failed",
                "remote_objects_flushed",
                "remote_pools_flushed",
            ),
            0,
        )

    def __repr__(self) -> str:
        pages = self.counters["remote_pages_flushed"]
        return f"<Flushes pages={pages} failed={self.counters['remote_page_flushes_failed']}>"

    async def send(self, tmem: OriginTmem) -> None:
        flushes = tmem.table.elsewhere.drain()
        by_node: dict[int, list[RemoteFlush]] = defaultdict(list)
        for flush in flushes:
            by_node[flush.node].append(flush)
        for node, batch in by_node.items():
            link = self._peers.links.get(node)
            if link is None:  # out of the view: sent if it comes back with its copies
                self._peers.orphan(node, batch)
                continue
            try:
                await link.flush(batch)
            except RamsterError as error:
                self.counters["remote_page_flushes_failed"] += len(batch)
                log.warning("flushes to node %d failed: %s", node, error.message)
                self._peers.unsure(node, batch)
                continue
            for flush in batch:
                kind = (
                    "remote_pools_flushed"
                    if flush.oid is None
                    else "remote_objects_flushed"
                    if flush.index is None
                    else "remote_pages_flushed"
                )
                self.counters[kind] += 1
