"""`Homecoming`: pages coming back to this node in bulk — at start, the persistent pages its
earlier epochs left on peers (`recover`); when the `ramster` param goes off, every remote
persistent page (`bring_home`, which refuses, leaving the rest remote, if they do not fit).

Until recovery is done no peer is placed on (`Peers.recovered`); a peer recovery could not read
is never told to forget this node's earlier epochs. Not here: what a holder hands back
(`ramster.remote.restore`), a single remote get (`ramster.remote.fetch`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from ramster.backend import Backend
from ramster.errors import FailedPrecondition, RamsterError
from ramster.remote.flushes import Flushes
from ramster.remote.handles import OriginTmem, RemoteRef
from ramster.remote.peers import Peers
from ramster.remote.policy import RemotifyConfig
from ramster.remote.restore import restore
from ramster.remote.shipping import drop_remote, remote_refs, repatriate
from ramster.wire.limits import MAX_RECOVER_EPOCHS

log = logging.getLogger("ramster.remote")


class Homecoming:
    """Recovery at start and bringing pages home, from `peers` into the backend's tree; a
    homecoming and a shipping round exclude each other through `shipping`."""

    def __init__(
        self,
        backend: Backend,
        peers: Peers,
        flushes: Flushes,
        config: RemotifyConfig,
        shipping: asyncio.Lock,
    ) -> None:
        self._backend = backend
        self._peers = peers
        self._flushes = flushes
        self._config = config
        self._shipping = shipping
        self.counters = {"pers_pages_recovered": 0}

    def __repr__(self) -> str:
        return f"<Homecoming recovered={self._peers.recovered}>"

    async def recover(self, tmem: OriginTmem, earlier: Sequence[str] | None, timeout: float) -> int:
        """Take back, from the peers in view, the persistent pages this node's `earlier` epochs
        (oldest first, as etcd recorded them) stored in `tmem`; return how many pages. Epochs
        peers hold that the record does not name are not this node's: they are dropped. With no
        record (`earlier` None: a cluster without etcd), the latest epoch a peer holds is taken
        back. A peer that has not listed its pages within `timeout` seconds is left unread. Until
        this is done no peer is placed on."""
        restored = await self._recover(tmem, earlier, timeout)
        self._peers.recovered = True
        await self._peers.introduce()
        return restored

    async def _recover(
        self, tmem: OriginTmem, earlier: Sequence[str] | None, timeout: float
    ) -> int:
        deadline = time.monotonic() + timeout
        links = self._peers.links
        surveys: dict[int, list[str]] = {}
        pending = list(links)
        while pending:  # a peer in view that fails is asked again, until the deadline
            answers = await asyncio.gather(
                *(links[n].recover((), timeout) for n in pending), return_exceptions=True
            )
            failed = []
            for number, answer in zip(pending, answers, strict=True):
                if isinstance(answer, BaseException):
                    failed.append(number)
                else:
                    surveys[number] = answer[0]
            pending = [n for n in failed if n in links]
            if pending and time.monotonic() > deadline:
                log.warning("nodes %s did not answer the recovery survey", pending)
                self._peers.unrecovered.update(pending)
                break
            if pending:
                await asyncio.sleep(0.5)
        if earlier is None:
            older = {e for epochs in surveys.values() for e in epochs if e != self._peers.epoch}
            keep = [max(older)] if older else []
        else:
            keep = list(earlier)[-MAX_RECOVER_EPOCHS:]  # the latest: what one Recover may name
        restored = 0
        for number, epochs in surveys.items():
            link = links.get(number)
            if link is None:
                continue
            if keep and epochs:
                try:
                    _, owners, keys = await link.recover(keep, timeout)
                except RamsterError as error:
                    log.warning("node %d: recovery failed: %s", number, error.message)
                    self._peers.unrecovered.add(number)
                    continue
                restored += restore(tmem, number, owners, keys)
            self._peers.introduced.add(number)
        await self._flushes.send(tmem)
        self.counters["pers_pages_recovered"] += restored
        if restored:
            log.info(
                "recovered %d persistent pages of epochs %s from peers", restored, ", ".join(keep)
            )
        return restored

    async def bring_home(self) -> int:
        """Repatriate every remote persistent page and drop remote ephemeral ones; raise
        FailedPrecondition, leaving the rest remote, if the store has no room for them."""
        tmem = self._backend.tmem
        if tmem is None:
            return 0
        async with self._shipping:
            return await self._bring_home(tmem)

    async def _bring_home(self, tmem: OriginTmem) -> int:
        home = 0
        refs = remote_refs(tmem.table, persistent=True)
        for node in sorted({ref.node for ref in refs}):
            batch = [ref for ref in refs if ref.node == node]
            for start in range(0, len(batch), self._config.batch_pages):
                chunk = batch[start : start + self._config.batch_pages]
                home += await self._repatriate(tmem, node, chunk)
        await self._flushes.send(tmem)  # the copies of the pages now home
        left = len(remote_refs(tmem.table, persistent=True))
        if left:
            raise FailedPrecondition(
                f"{left} persistent pages could not come home (store full or holder "
                "unreachable): ramster stays on"
            )
        for ref in remote_refs(tmem.table, persistent=False):
            drop_remote(tmem.table, ref)
        await self._flushes.send(tmem)
        return home

    async def _repatriate(self, tmem: OriginTmem, node: int, refs: list[RemoteRef]) -> int:
        link = self._peers.links.get(node)
        if link is None:
            return 0
        try:
            answers = await link.get(refs)
        except RamsterError as error:
            log.warning("node %d unreachable while bringing pages home: %s", node, error.message)
            return 0
        # Each page home queues the flush of the copy it replaces: sent by `Flushes.send`.
        return sum(
            answer is not None
            and answer[1] == ref.version
            and repatriate(tmem.table, ref, answer[0])
            for ref, answer in zip(refs, answers, strict=True)
        )
