"""This node's pages kept on peers: remote handles, replicas and the flush queue (reference
§A1.4, §A1.5, §A5.5, §A5.6; docs/design.md §6).

`RemoteIndex` is the page table's `Elsewhere` (`ramster.tmem.elsewhere`) for RAMster. An object
slot with the `REMOTE` bit is a *remote handle*: the peer that holds the page and the version it
had when shipped (the kernel's fake pampd, without its 8-node limit). A persistent page may also
have a *replica*, a second copy on another peer (`persistent_copies`), known by the page's
version. When a page goes, the flushes of its copies queue here (`RemoteFlush`), oldest first,
for `ramster.remote.flushes` to send. The values that carry a page between this node and its
peers are here too: `Shipment` (a page taken to be shipped), `RemoteRef` (a get found it on a
peer), `Unanswered`. The decisions over them are `ramster.remote.shipping` and
`ramster.remote.copies`. No I/O here.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

from ramster.page import PackedPage
from ramster.tmem.elsewhere import REMOTE
from ramster.tmem.host import Tmem
from ramster.tmem.keys import Oid, PageVersion, TmemLimits
from ramster.tmem.pool import INDEX_BYTES_PER_PAGE, Pool, TmemObject
from ramster.tmem.store import PageStore
from ramster.tmem.table import PageTable

REMOTE_HANDLE_BYTES = 12


REMOTE_PAGE_BYTES = REMOTE_HANDLE_BYTES + INDEX_BYTES_PER_PAGE
"""What a page on a peer still costs here: its handle and its index entry."""

REMOTE_COUNTERS = (
    "eph_pages_remoted",
    "pers_pages_remoted",
    "eph_pages_remote_failed",
    "pers_pages_remote_failed",
    "remote_eph_pages_succ_get",
    "remote_pers_pages_succ_get",
    "remote_eph_pages_unsucc_get",
    "remote_pers_pages_unsucc_get",
    "remote_pers_pages_lost",
    "pers_pages_repatriated",
    "pers_puts_unreplicated",
)
"""RAMster's debugfs names (reference §C4) for what the pure steps decide; the remote layer
counts the flushes it sends."""


@dataclass(frozen=True, slots=True)
class Shipment(PageVersion):
    """A local page taken to be shipped to a peer, and how to find it again."""

    obj_id: int
    slot: int
    persistent: bool
    page: PackedPage
    replica: int | None = None
    """The node holding the page's other copy: it must not receive this one too."""


@dataclass(frozen=True, slots=True)
class RemoteRef(PageVersion):
    """A page a get found on a peer: fetch it from `node`, then hand it to `shipping.localify`."""

    node: int
    obj_id: int
    persistent: bool
    page_size: int
    replica: int | None = None
    """The node holding the page's other copy, read if `node` cannot answer."""


@dataclass(frozen=True, slots=True)
class Unanswered:
    """A get of a remote page that no holder answered in time (`nodes`: the holders that did
    not): neither the page nor a miss, since the page may still be there."""

    nodes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RemoteFlush:
    """A copy a peer holds that must go: one page of one `version`, a whole object (index None:
    the copies of its pages up to `version`) or a whole pool (oid None; a pool uid is never used
    again). Idempotent on the holder; a page flush never removes a copy of another version, nor
    an object flush a newer one, so a late flush cannot delete a newer copy shipped to the same
    peer (version 0: any version)."""

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


class RemoteIndex:
    """Where this node's pages kept on peers are: the page table's `Elsewhere` for RAMster.

    `handles` names the peer holding each remote page, `replicas` the peer holding the second
    copy of a persistent page (by version), `flushes` the copies peers hold that must go, oldest
    first. Remote handles and their index entries stay in memory: they are charged to `store`.
    """

    __slots__ = ("_store", "counts", "flushes", "handles", "replicas")

    def __init__(self, store: PageStore) -> None:
        self._store = store
        self.handles = RemoteHandles()
        self.replicas: dict[int, int] = {}
        """The peer holding the second copy of a persistent page, by the page's version."""
        self.flushes: list[RemoteFlush] = []
        """Copies peers hold that must go, oldest first; `ramster.remote.flushes` sends them."""
        self.counts = dict.fromkeys(REMOTE_COUNTERS, 0)

    def __repr__(self) -> str:
        return (
            f"<RemoteIndex pages={self.handles.total} replicas={len(self.replicas)} "
            f"flushes={len(self.flushes)}>"
        )

    # -- the page table's Elsewhere ----------------------------------------------------------

    def version(self, handle: int) -> int:
        return self.handles.version(handle)

    def away(self, obj: TmemObject, index: int, handle: int) -> RemoteRef:
        pool = obj.pool
        version = self.handles.version(handle)
        return RemoteRef(
            node=self.handles.node(handle),
            obj_id=obj.obj_id,
            pool_uid=pool.uid,
            persistent=pool.spec.persistent,
            oid=obj.oid,
            index=index,
            version=version,
            page_size=pool.spec.page_size,
            replica=self.replicas.get(version),
        )

    def forget(self, obj: TmemObject, index: int, slot: int) -> None:
        """Forget the replica of the page at `slot` and, for a remote handle, the handle; queue
        the flushes of the copies peers hold."""
        pool = obj.pool
        # Foreign pages carry their origin's versions: never replicas here.
        if self.replicas and not pool.foreign:
            version = self._slot_version(slot)
            node = self.replicas.pop(version, None)
            if node is not None:
                self.flushes.append(RemoteFlush(node, pool.uid, obj.oid, index, version))
        if slot & REMOTE:
            version = self.handles.version(slot)
            node = self.remove(slot, pool.spec.persistent)
            self.flushes.append(RemoteFlush(node, pool.uid, obj.oid, index, version))

    def forget_object(self, obj: TmemObject) -> None:
        """Forget the copies of every page of `obj`: one object flush per peer that held some,
        up to the newest version it held (the key may get a newer copy before the flush goes)."""
        pool_uid, oid = obj.pool.uid, obj.oid
        held = self._forget_all(obj)
        self.flushes.extend(RemoteFlush(n, pool_uid, oid, None, held[n]) for n in sorted(held))

    def forget_pool(self, pool: Pool) -> None:
        """Forget the copies of every page of `pool`: one pool flush per peer that held some."""
        holders: set[int] = set()
        for obj in pool.objects.values():
            holders.update(self._forget_all(obj))
        self.flushes.extend(RemoteFlush(node, pool.uid) for node in sorted(holders))

    def counters(self) -> dict[str, int]:
        return {
            **self.counts,
            "remote_pages": self.handles.total,
            "remote_pers_pages": self.handles.persistent,
            "pers_pages_replicated": len(self.replicas),
        }

    # -- for the pure steps of ramster.remote ------------------------------------------------

    def add(self, node: int, version: int, persistent: bool) -> int:
        """A new remote handle, charged to the store: it and its index entry stay in memory."""
        self._store.charge(REMOTE_PAGE_BYTES)
        return self.handles.add(node, version, persistent)

    def remove(self, handle: int, persistent: bool) -> int:
        """Forget a remote handle; return the node that held its page."""
        self._store.charge(-REMOTE_PAGE_BYTES)
        return self.handles.remove(handle, persistent)

    def drain(self) -> list[RemoteFlush]:
        """Take every queued flush, oldest first."""
        flushes, self.flushes = self.flushes, []
        return flushes

    # -- internals ---------------------------------------------------------------------------

    def _slot_version(self, slot: int) -> int:
        return self.handles.version(slot) if slot & REMOTE else self._store.version(slot)

    def _forget_all(self, obj: TmemObject) -> dict[int, int]:
        """Forget the replicas and handles of every page of `obj`; return the peers that held
        some of their copies, each with the newest version it held."""
        holders: dict[int, int] = {}
        persistent = obj.pool.spec.persistent
        replicas = self.replicas if persistent and not obj.pool.foreign else {}
        if not replicas and not self.handles.total:
            return holders
        for _, slot in obj.items():
            if not replicas and not slot & REMOTE:
                continue  # a page here with no copy elsewhere
            version = self._slot_version(slot)
            if replicas:
                replica = replicas.pop(version, None)
                if replica is not None:
                    holders[replica] = max(holders.get(replica, 0), version)
            if slot & REMOTE:
                holder = self.remove(slot, persistent)
                holders[holder] = max(holders.get(holder, 0), version)
        return holders


OriginTable = PageTable[RemoteIndex]
"""The page table of a node whose pages may be kept on peers."""
OriginTmem = Tmem[RemoteIndex]
"""The tmem of a node whose pages may be kept on peers."""


def origin_tmem(
    store: PageStore,
    limits: TmemLimits | None = None,
    *,
    first_pool_uid: int = 1,
    first_version: int = 1,
) -> OriginTmem:
    """A node's tmem over `store`, whose pages may be kept on peers: numbering pools and page
    versions from `first_pool_uid` and `first_version`."""
    table = PageTable(
        store,
        RemoteIndex(store),
        first_pool_uid=first_pool_uid,
        first_version=first_version,
    )
    return Tmem(table, limits)
