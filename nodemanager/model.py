"""What membership knows about nodes: the values every membership backend hands out.

`MemberInfo` is what a node publishes about itself (etcd: ``nodes/<num>``); `Membership` is the
interface the node depends on, with two implementations: `nodemanager.etcd.EtcdMembership`
(etcd3aio, leases, watches) and `nodemanager.static.StaticMembership` (a fixed ``--peer`` list,
or alone). One contract suite runs against both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """One node as the cluster sees it.

    number: the node's stable number in the cluster (kept across restarts, never reused).
    name: the node's unique name.
    address: where peers reach its gRPC server, ``HOST:PORT``.
    epoch: changes on every start of the node process.
    capacity_bytes: its zcache budget.
    free_bytes: budget not yet used (what remote_target=auto ranks peers by).
    zcache: its backend is loaded.
    ramster: its remote layer is on (it ships and accepts remote pages).
    draining: it is leaving: it takes no new pages, and origins move their copies off it.
    """

    number: int
    name: str
    address: str
    epoch: str
    capacity_bytes: int
    free_bytes: int
    zcache: bool = True
    ramster: bool = True
    draining: bool = False


MembersChanged = Callable[[dict[int, MemberInfo]], Awaitable[None]]
"""Called with the whole new view (every live member, self included) after each change."""

ParamsChanged = Callable[[dict[str, str]], Awaitable[None]]
"""Called with every cluster-wide param after each change."""

QuotasChanged = Callable[[dict[str, str]], Awaitable[None]]
"""Called with every cluster-wide quota (identity → bytes, as text) after each change."""


class Membership(Protocol):
    """How a node joins the cluster, finds its peers and follows cluster-wide params and quotas.

    The callbacks run one at a time, in the order of the changes, each with a snapshot taken when
    its change happened (`members` and `params` may already be newer); an exception in one is
    logged and delivery goes on. None runs after `stop` returns.
    """

    @property
    def node_number(self) -> int:
        """This node's number; valid after `start`."""
        ...

    async def start(
        self,
        me: MemberInfo,
        on_members: MembersChanged,
        on_params: ParamsChanged,
        on_quotas: QuotasChanged,
    ) -> int:
        """Claim (or reclaim) the node's number for `me.name`, publish `me` with that number,
        deliver the initial view, params and quotas (those only where the cluster keeps them:
        etcd), and keep following changes. Returns the number."""
        ...

    async def publish(self, me: MemberInfo) -> None:
        """Replace what this node publishes (free bytes, flags) with `me`."""
        ...

    def members(self) -> dict[int, MemberInfo]:
        """The last view: every live member by number, self included. Kept while etcd is down."""
        ...

    def params(self) -> dict[str, str]:
        """The last known cluster-wide params."""
        ...

    async def set_param(self, name: str, value: str) -> None:
        """Set a cluster-wide param (every node receives it through `on_params`)."""
        ...

    @property
    def reachable(self) -> bool:
        """Whether the view is current (etcd answers); while it is not, the last one is kept."""
        ...

    def forgotten(self) -> dict[int, str]:
        """The nodes an operator decommissioned lately (number → name): every member drops what
        it keeps for them; a change of them is delivered through `on_members`."""
        ...

    async def forget(self, name: str, announce: float) -> int:
        """Decommission the node called `name` (it must not be up): every member drops what it
        keeps for its number; returns that number. `announce`: seconds the decision is kept
        for members that do not see it at once."""
        ...

    def earlier_epochs(self) -> list[str] | None:
        """This node's epochs recorded before its current one whose pages peers may still hold,
        oldest first (the order the record was made in, not the epochs' clocks); valid after
        `start`. What a restarted node takes back: recovery trusts this record, not what peers
        claim. None where no record is kept (a cluster without etcd)."""
        ...

    async def retire_epochs(self, epochs: Sequence[str]) -> None:
        """Drop `epochs` from the record: peers handed their pages over (or hold none)."""
        ...

    async def load_dictionaries(self) -> tuple[int, dict[int, str]] | None:
        """This node's recorded dictionaries of persistent pools (id → the record
        `save_dictionary` wrote) and the lowest id it never used; valid after `start`. None
        where no record is kept (a cluster without etcd): persistent pools get no dictionary
        there, as a restarted node could not decode their pages."""
        ...

    async def save_dictionary(self, dict_id: int, record: str) -> None:
        """Record dictionary `dict_id` (and that no id up to it may be used again): done before
        any page is packed with it."""
        ...

    async def drop_dictionaries(self, dict_ids: Sequence[int]) -> None:
        """Drop dictionaries `dict_ids` from the record: their pool is gone."""
        ...

    async def set_lease_ttl(self, ttl: float) -> None:
        """How long a member that died unannounced counts as up, from now on: etcd moves this
        node's entry to a new lease of `ttl` seconds at once (and revokes the old one); without
        etcd, a peer that stops answering stays in the view for `ttl` seconds."""
        ...

    async def stop(self) -> None:
        """Leave: withdraw this node's entry (a lease revoke in etcd) and stop watching."""
        ...
