"""`Fetcher`: gets of pages this node keeps on peers — one request per page however many callers
wait for it, failing over to the page's other copy, each answer settled against the tree again.

A holder that answers without its copy lost it (the other copy is the only one now); a
persistent page no holder answered for in time is `Unanswered` (UNAVAILABLE, never a miss); a
get across a backend reload is a miss. Not here: the pure settling rules (`ramster.remote.copies`,
`ramster.remote.shipping.localify`), the tier that asks (`ramster.rpc.tmem_service`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence

from ramster.backend import Backend
from ramster.errors import RamsterError
from ramster.remote.copies import lost_copy
from ramster.remote.handles import OriginTmem, RemoteRef, Unanswered
from ramster.remote.peer import FoundPage
from ramster.remote.peers import Peers
from ramster.remote.policy import brings_home
from ramster.remote.shipping import localify
from ramster.tmem import Hit

log = logging.getLogger("ramster.remote")

FetchKey = tuple[int, int, int]
"""(obj_id, index, version): concurrent gets of one remote page share one request."""

Fetched = Hit | Unanswered | None
"""What a get of a remote page answers (`Fetcher.fetch`)."""


class Fetcher:
    """Remote gets of the pages the backend's tree keeps on `peers`."""

    def __init__(self, backend: Backend, peers: Peers) -> None:
        self._backend = backend
        self._peers = peers
        self._inflight: dict[FetchKey, asyncio.Future[Fetched]] = {}
        self.counters = dict.fromkeys(("remote_gets_sent", "remote_gets_failed_over"), 0)

    def __repr__(self) -> str:
        return f"<Fetcher in_flight={len(self._inflight)}>"

    async def fetch(self, refs: Sequence[RemoteRef], keep: bool) -> list[Fetched]:
        """The pages of `refs`, checked against the tree again once they arrive: a `Hit`, None
        (not there), or `Unanswered` (a persistent page no holder answered for in time). Holders
        are asked to keep their copies: a get that frees takes the page once its answer is on
        its way (`OriginTmem.take`). With `keep` (a get that does not free), persistent pages read
        come home while the store is below its low watermark."""
        futures = []
        wanted: dict[int, list[RemoteRef]] = defaultdict(list)
        loop = asyncio.get_running_loop()
        for ref in refs:
            key = _fetch_key(ref)
            future = self._inflight.get(key)
            if future is None:
                future = self._inflight[key] = loop.create_future()
                wanted[ref.node].append(ref)
            futures.append(future)
        # Shielded: a caller that gives up (deadline, disconnect) must not strand the others
        # waiting for the same pages.
        tmem = self._backend.tmem
        await asyncio.shield(
            asyncio.gather(
                *(self._fetch_from(tmem, node, batch, keep) for node, batch in wanted.items())
            )
        )
        return [await future for future in futures]

    async def _fetch_from(
        self, asked: OriginTmem | None, node: int, refs: list[RemoteRef], keep: bool
    ) -> None:
        """Fetch from one peer and settle each page against the tree it was asked for: if the
        backend was reloaded meanwhile, the refs mean nothing in the new one (a miss)."""
        try:
            answers = await self._ask(node, refs)
            retry = [
                ref
                for n, ref in enumerate(refs)
                if ref.replica is not None and (answers is None or answers[n] is None)
            ]
            second, unasked = await self._ask_replicas(retry)
            tmem = self._backend.tmem
            for n, ref in enumerate(refs):
                future = self._inflight.pop(_fetch_key(ref))
                if tmem is None or tmem is not asked:  # reloaded meanwhile: a miss
                    future.set_result(None)
                    continue
                primary = answers[n] if answers is not None else None
                future.set_result(
                    self._settle(tmem, ref, primary, answers is not None, second, unasked, keep)
                )
        finally:
            # Whatever was raised, no caller may wait for these pages for ever.
            for ref in refs:
                stuck = self._inflight.pop(_fetch_key(ref), None)
                if stuck is not None and not stuck.done():
                    stuck.set_result(Unanswered((ref.node,)))

    def _settle(
        self,
        tmem: OriginTmem,
        ref: RemoteRef,
        primary: FoundPage | None,
        asked: bool,
        second: dict[tuple[int, int], FoundPage],
        unasked: set[tuple[int, int]],
        keep: bool,
    ) -> Fetched:
        """What the get of `ref` answers, from the reply of its primary (`asked`: it replied)
        and of its replica if that was asked too. A holder that replied without its copy lost
        it: the other copy is the only one now (`lost_copy`)."""
        replies: dict[int, FoundPage | None] = {ref.node: primary} if asked else {}
        key = (ref.obj_id, ref.index)
        silent = [] if asked else [ref.node]
        if ref.replica is not None and primary is None:  # the replica was asked too
            if key in unasked:
                silent.append(ref.replica)
            else:
                replies[ref.replica] = second.get(key)
        found = [(node, reply) for node, reply in replies.items() if reply is not None]
        if not found and not silent:
            return localify(tmem.table, ref, None)  # every holder answered without it
        for node, reply in replies.items():
            if reply is None:
                lost_copy(tmem.table, ref, node)
        if not found:
            return localify(tmem.table, ref, Unanswered(tuple(silent)))
        source, answer = found[0]
        if source != ref.node:
            self.counters["remote_gets_failed_over"] += 1
        return localify(tmem.table, ref, answer, keep and self._room_at_home())

    def _room_at_home(self) -> bool:
        """A page read from a peer may come home: the store is below its low watermark."""
        store = self._backend.store
        return store is not None and brings_home(
            store.used_bytes, store.config.memory, store.config.low_watermark
        )

    async def _ask(self, node: int, refs: Sequence[RemoteRef]) -> list[FoundPage | None] | None:
        """The answers of peer `node` for `refs`, or None if it could not be asked. A peer
        whose pages have another copy gets the shorter `read_timeout_ms` (a module param)."""
        link = self._peers.links.get(node)
        if link is None:
            return None
        failover = any(ref.replica is not None for ref in refs)
        try:
            read_timeout = self._backend.params.read_timeout_ms / 1000
            answers = await link.get(refs, read_timeout if failover else None)
        except RamsterError as error:
            log.warning("remote get from node %d failed: %s", node, error.message)
            return None
        self.counters["remote_gets_sent"] += 1
        return answers

    async def _ask_replicas(
        self, refs: Sequence[RemoteRef]
    ) -> tuple[dict[tuple[int, int], FoundPage], set[tuple[int, int]]]:
        """The pages the replicas of `refs` hold, by (obj_id, index), and the keys whose
        replica could not be asked."""
        by_node: dict[int, list[RemoteRef]] = defaultdict(list)
        for ref in refs:
            assert ref.replica is not None
            by_node[ref.replica].append(ref)
        found: dict[tuple[int, int], FoundPage] = {}
        unasked: set[tuple[int, int]] = set()
        for node, batch in by_node.items():
            answers = await self._ask(node, batch)
            if answers is None:
                unasked.update((ref.obj_id, ref.index) for ref in batch)
                continue
            for ref, answer in zip(batch, answers, strict=True):
                if answer is not None:
                    found[ref.obj_id, ref.index] = answer
        return found, unasked


def _fetch_key(ref: RemoteRef) -> FetchKey:
    return (ref.obj_id, ref.index, ref.version)
