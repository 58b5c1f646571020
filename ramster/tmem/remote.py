"""Pages held by peers, as the tmem core sees them (reference §A1.4, §A1.5, §A5.5, §A5.6).

An object's slot with the `REMOTE` bit is a *remote handle*: the peer that holds the page and the
version it had when shipped (the kernel's fake pampd, without its 8-node limit). The core hands
out `Shipment`s for remotify and swaps a local page for a handle only if its version is still the
one shipped (compare-and-swap); a get of a remote page yields a `RemoteRef`, and the fetched bytes
(or `Unanswered`: no holder answered) come back through `shipping.localify`, which re-checks the
key. Flushes of remote pages become
`RemoteFlush`es, queued for the remote layer. A persistent page may also have a *replica*: a
second copy on another peer (`persistent_copies`), known by the page's version. No I/O here.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import Protocol

from ramster.page import PackedPage
from ramster.tmem.keys import Oid

REMOTE = 1 << 31
"""An object slot value with this bit set is a remote handle, not a store slot."""

REMOTE_HANDLE_BYTES = 12


@dataclass(frozen=True, slots=True)
class Shipment:
    """A local page taken to be shipped to a peer, and how to find it again."""

    obj_id: int
    slot: int
    pool_uid: int
    persistent: bool
    oid: Oid
    index: int
    version: int
    page: PackedPage
    replica: int | None = None
    """The node holding the page's other copy: it must not receive this one too."""


@dataclass(frozen=True, slots=True)
class RemoteRef:
    """A page a get found on a peer: fetch it from `node`, then hand it to `shipping.localify`."""

    node: int
    obj_id: int
    pool_uid: int
    persistent: bool
    oid: Oid
    index: int
    version: int
    page_size: int
    replica: int | None = None
    """The node holding the page's other copy, read if `node` cannot answer."""


@dataclass(frozen=True, slots=True)
class Unanswered:
    """A get of a remote page that no holder answered in time (`nodes`: the holders that did
    not): neither the page nor a miss, since the page may still be there."""

    nodes: tuple[int, ...]


class PageVersion(Protocol):
    """One version of one page of this node: what a page flush names."""

    @property
    def pool_uid(self) -> int: ...
    @property
    def oid(self) -> Oid: ...
    @property
    def index(self) -> int: ...
    @property
    def version(self) -> int: ...


@dataclass(frozen=True, slots=True)
class RemoteFlush:
    """A copy a peer holds that must go: one page of one `version`, a whole object (index None)
    or a whole pool (oid None). Idempotent on the holder; a page flush never removes a copy of
    another version, so a late flush cannot delete a newer copy shipped to the same peer."""

    node: int
    pool_uid: int
    oid: Oid | None = None
    index: int | None = None
    version: int = 0

    @classmethod
    def of(cls, node: int, page: PageVersion) -> RemoteFlush:
        """The flush of the copy of `page` (that version only) that `node` holds."""
        return cls(node, page.pool_uid, page.oid, page.index, page.version)


class RemoteHandles:
    """The holder's node number and the shipped version of every remote page."""

    __slots__ = ("_free", "_nodes", "_per_node", "_versions", "persistent", "total")

    def __init__(self) -> None:
        self._nodes = array("I")
        self._versions = array("Q")
        self._free = array("I")
        self._per_node: dict[int, int] = {}  # handles by holder: who holds pages, at no scan
        self.total = 0
        self.persistent = 0

    def __len__(self) -> int:
        return self.total

    def __repr__(self) -> str:
        return f"<RemoteHandles pages={self.total} persistent={self.persistent}>"

    def add(self, node: int, version: int, persistent: bool) -> int:
        if self._free:
            n = self._free.pop()
            self._nodes[n], self._versions[n] = node, version
        else:
            n = len(self._nodes)
            self._nodes.append(node)
            self._versions.append(version)
        self.total += 1
        self.persistent += persistent
        self._count(node, 1)
        return REMOTE | n

    def node(self, handle: int) -> int:
        return self._nodes[handle & ~REMOTE]

    def version(self, handle: int) -> int:
        return self._versions[handle & ~REMOTE]

    def move(self, handle: int, node: int) -> None:
        """The page's copy is now the one `node` holds (same version)."""
        n = handle & ~REMOTE
        self._count(self._nodes[n], -1)
        self._count(node, 1)
        self._nodes[n] = node

    def remove(self, handle: int, persistent: bool) -> int:
        """Forget a handle; return the node that held its page."""
        n = handle & ~REMOTE
        self._free.append(n)
        self.total -= 1
        self.persistent -= persistent
        self._count(self._nodes[n], -1)
        return self._nodes[n]

    def holders(self) -> set[int]:
        """The nodes that hold at least one page of a handle."""
        return set(self._per_node)

    def _count(self, node: int, change: int) -> None:
        left = self._per_node.get(node, 0) + change
        if left:
            self._per_node[node] = left
        else:
            del self._per_node[node]
