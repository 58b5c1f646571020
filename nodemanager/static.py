"""Membership without etcd: a fixed list of peer addresses (``--peer ADDR``, repeated), or none.

Every `interval` seconds each peer is asked who it is (`probe`; the node answers it with
``Peer/Hello``). A peer that answers is in the view under the number it gives, as it answered;
one that does not answer, or answers late, stays in the view as it last answered until it has
been silent for `ttl` seconds (what an etcd lease is to the etcd backend: one late answer of a
busy peer does not make every member write off the copies it holds), then is out of the view
until it answers again. One that gives a number already taken is out of the view at once.
Params are local to this node: `set_param` changes them and calls ``on_params``, nothing else.
With no peers the node is alone: the view is itself.

Not here: the etcd backend (`nodemanager.etcd`), the probe itself (the node, over ``Peer/Hello``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence

from nodemanager.model import MemberInfo, MembersChanged, ParamsChanged, QuotasChanged
from nodemanager.notify import Notifier
from ramster.errors import FailedPrecondition, InvalidArgument, shown

log = logging.getLogger("nodemanager.membership")

Probe = Callable[[str], Awaitable[MemberInfo | None]]
"""Asks the peer at an address who it is: its `MemberInfo`, or None if it is not serving."""


class StaticMembership:
    """`Membership` over a fixed list of peers.

    me_number: this node's number (static clusters number their nodes by hand).
    peers: the peers' addresses, ``HOST:PORT``; this node's own address may be among them.
    probe: asks a peer who it is (`Probe`); an exception counts as no answer.
    interval: seconds between probe rounds (default 1); a probe that takes longer is no answer.
    ttl: seconds a peer stays in the view without answering (default 3, the etcd lease's).
    """

    def __init__(
        self,
        me_number: int,
        peers: list[str],
        probe: Probe,
        interval: float = 1.0,
        ttl: float = 3.0,
    ) -> None:
        if me_number < 0:
            raise InvalidArgument.field("me_number", me_number, "a node number >= 0")
        if not interval > 0:
            raise InvalidArgument.field("interval", interval, "seconds > 0")
        self._number = me_number
        self.peers = list(dict.fromkeys(peers))
        self._probe = probe
        self.interval = interval
        self.ttl = _checked_ttl(ttl)
        self._heard: dict[str, tuple[float, MemberInfo]] = {}
        """Each peer address's last answer, and when it came (the loop's clock)."""
        self._me: MemberInfo | None = None
        self._view: dict[int, MemberInfo] = {}
        self._params: dict[str, str] = {}
        self._refused: dict[str, str] = {}  # address → why its answer was not taken, logged once
        self._notifier: Notifier | None = None
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return (
            f"<StaticMembership node={self._number} members={len(self._view)} "
            f"peers={len(self._view) - (self._me is not None)}/{len(self.peers)}>"
        )

    @property
    def node_number(self) -> int:
        return self._number

    def members(self) -> dict[int, MemberInfo]:
        return dict(self._view)

    def params(self) -> dict[str, str]:
        return dict(self._params)

    async def start(
        self,
        me: MemberInfo,
        on_members: MembersChanged,
        on_params: ParamsChanged,
        on_quotas: QuotasChanged,
    ) -> int:
        if self._notifier is not None:
            raise FailedPrecondition(f"{self!r} is already started")
        self._me = dataclasses.replace(me, number=self._number)
        self._view = await self._probe_all()
        self._notifier = Notifier(on_members, on_params, on_quotas)  # no cluster-wide quotas
        self._notifier.members(self._view)
        self._notifier.params(self._params)
        await self._notifier.drain()
        self._task = asyncio.create_task(self._probe_forever(), name="membership-probe")
        log.info(
            "node %d started with static membership: %d of %d peers answer",
            self._number, len(self._view) - 1, len(self.peers),
        )  # fmt: skip
        return self._number

    async def publish(self, me: MemberInfo) -> None:
        if self._me is None or self._notifier is None:
            raise FailedPrecondition("publish() before start()")
        self._me = dataclasses.replace(me, number=self._number)
        self._update({**self._view, self._number: self._me})

    async def set_param(self, name: str, value: str) -> None:
        if self._notifier is None:
            raise FailedPrecondition("set_param() before start()")
        if self._params.get(name) != value:
            self._params[name] = value
            self._notifier.params(self._params)

    @property
    def reachable(self) -> bool:
        return True  # the view is this node's own probes: always current

    def forgotten(self) -> dict[int, str]:
        return {}

    def earlier_epochs(self) -> list[str] | None:
        return None  # no record outlives a node here: recovery takes what peers hold

    async def retire_epochs(self, epochs: Sequence[str]) -> None:
        pass

    async def load_dictionaries(self) -> tuple[int, dict[int, str]] | None:
        return None  # no record outlives a node here: persistent pools get no dictionary

    async def save_dictionary(self, dict_id: int, record: str) -> None:
        raise FailedPrecondition("a cluster without etcd keeps no dictionary record")

    async def drop_dictionaries(self, dict_ids: Sequence[int]) -> None:
        pass

    async def set_lease_ttl(self, ttl: float) -> None:
        """A silent peer stays in the view for `ttl` seconds from now on."""
        self.ttl = _checked_ttl(ttl)

    async def forget(self, name: str, announce: float) -> int:
        raise FailedPrecondition(
            f"cannot forget node {shown(name)}: a cluster without etcd has no names to release; "
            "remove it from every --peer list (its pages go after origin_grace)"
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._notifier is None:
            return
        await self._notifier.close()
        self._notifier = None
        log.info("node %d stopped following its %d static peers", self._number, len(self.peers))

    async def _probe_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self._update(await self._probe_all())

    def _update(self, view: dict[int, MemberInfo]) -> None:
        if view != self._view:
            self._view = view
            assert self._notifier is not None
            self._notifier.members(view)

    async def _probe_all(self) -> dict[int, MemberInfo]:
        assert self._me is not None
        answers = await asyncio.gather(*(self._ask(address) for address in self.peers))
        now = asyncio.get_running_loop().time()
        view = {self._number: self._me}
        for address, answer in zip(self.peers, answers, strict=True):
            if answer is not None:
                self._heard[address] = (now, answer)
            heard = self._heard.get(address)
            if heard is not None and now - heard[0] >= self.ttl:
                del self._heard[address]  # silent too long: out of the view
                heard = None
            info = heard[1] if heard is not None else None
            if info is None or (info.name, info.number) == (self._me.name, self._number):
                continue  # silent, or this node's own address in the list
            holder = view.get(info.number)
            if holder is not None:
                taken = f"number {info.number} of {shown(info.name)}"
                self._refuse(address, f"{taken} is taken by {shown(holder.name)}")
                continue
            self._refused.pop(address, None)
            view[info.number] = info
        return view

    async def _ask(self, address: str) -> MemberInfo | None:
        try:
            async with asyncio.timeout(self.interval):
                return await self._probe(address)
        except Exception as error:  # a peer that cannot answer is simply out of the view
            log.debug("peer %s did not answer: %r", address, error)
            return None

    def _refuse(self, address: str, why: str) -> None:
        if self._refused.get(address) != why:
            log.warning("ignoring peer %s: %s", address, why)
            self._refused[address] = why


def _checked_ttl(ttl: float) -> float:
    """`ttl` if it is a time a peer may stay silent: seconds above 0."""
    if not ttl > 0:
        raise InvalidArgument.field("ttl", ttl, "seconds > 0")
    return ttl
