"""The page table of one node: clients → pools → objects → slots, and the numbering of pools and
page versions (reference §A1.1).

The one public mutation surface of the tmem tree. `ramster.tmem.host` applies the put/get/flush
rules and validates requests on top of it; the node's own code (`ramster.holder`,
`ramster.remote`) changes the tree through these methods only (ruff's SLF001 holds there). It
validates nothing: its callers checked their input, or made it themselves. Pages kept elsewhere
are handles (`ramster.tmem.elsewhere`): the table asks its `Elsewhere` to let go of their copies
when pages go. Pure and synchronous.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, cast, overload

from ramster.errors import InvalidArgument, PoolNotFound, ResourceExhausted, shown
from ramster.page import PackedPage
from ramster.tmem.elsewhere import REMOTE, ElsewhereT, Nowhere
from ramster.tmem.keys import EXPORT_PREFIX, Oid, PoolSpec, owner_scope
from ramster.tmem.pool import (
    FOREIGN_CLIENT_BYTES,
    FOREIGN_POOL_BYTES,
    OBJECT_BYTES,
    Pool,
    TmemObject,
)
from ramster.tmem.quota import Accounts
from ramster.tmem.store import Created, PageStore, Rejected, RejectReason

INDEX_BITS = 32
INDEX_MASK = (1 << INDEX_BITS) - 1

PageData = bytes | PackedPage
"""A page as a client hands it over: raw bytes, or packed (`ramster.page`)."""


@dataclass(frozen=True, slots=True)
class Stored:
    """A put succeeded; the page now has `version` (unique and increasing on this host)."""

    version: int


PutOutcome = Stored | Rejected

QUOTA_REFUSED = Rejected(RejectReason.QUOTA)
"""The outcome of a put of a new key past its identity's quota (`ramster.tmem.quota`)."""

FOREIGN_PREFIX = "peer:"
"""Client names of the pages held for other nodes (`ramster.holder.foreign`)."""


def application_client(client: str) -> bool:
    """Whether `client` is an application's: not a peer's pages held here (`FOREIGN_PREFIX`),
    not an NBD export (`EXPORT_PREFIX`, bounded by its size and kept until deleted). Only an
    application's pools keep a session and are metered by quotas."""
    return not client.startswith((FOREIGN_PREFIX, EXPORT_PREFIX))


class PageTable(Generic[ElsewhereT]):
    """Every pool, object and page of one node, over the `store` that holds the bytes and the
    `elsewhere` that knows the pages kept on other nodes."""

    @overload
    def __init__(
        self: PageTable[Nowhere],
        store: PageStore,
        *,
        first_pool_uid: int = 1,
        first_version: int = 1,
    ) -> None: ...
    @overload
    def __init__(
        self,
        store: PageStore,
        elsewhere: ElsewhereT,
        *,
        first_pool_uid: int = 1,
        first_version: int = 1,
    ) -> None: ...
    def __init__(
        self,
        store: PageStore,
        elsewhere: Any = None,
        *,
        first_pool_uid: int = 1,
        first_version: int = 1,
    ) -> None:
        self.store = store
        self.elsewhere: ElsewhereT = cast(ElsewhereT, elsewhere or Nowhere())
        self._clients: dict[str, dict[int, Pool]] = {}
        self._foreign_clients = 0
        self._shared: dict[tuple[str, uuid.UUID], Pool] = {}
        """Shared pools by (owner scope, UUID): a UUID is shared within a scope only."""
        self._objects: dict[int, TmemObject] = {}
        self._next_obj_id = 0
        self._next_pool_uid = first_pool_uid - 1
        self._version = first_version - 1
        self.accounts = Accounts()
        """The pages of each owner scope and its quota (`ramster.tmem.quota`)."""
        self._counters = dict.fromkeys(
            (
                "obj_count_max",
                "flush_total",
                "flush_found",
                "flobj_total",
                "flobj_found",
                "put_quota",
            ),
            0,
        )

    def __repr__(self) -> str:
        return f"<PageTable {self.describe()} elsewhere={self.elsewhere!r}>"

    def describe(self) -> str:
        """How many clients, pools, objects and pages the table holds, in one line."""
        pools = sum(map(len, self._clients.values()))
        pages = sum(map(len, self._objects.values()))
        return (
            f"clients={len(self._clients)} pools={pools} objects={len(self._objects)} pages={pages}"
        )

    # -- numbering ---------------------------------------------------------------------------

    def new_pool(self, spec: PoolSpec, foreign: bool = False) -> Pool:
        """A new pool under the next uid, in no client yet (`place_pool`)."""
        self._next_pool_uid += 1
        return Pool(spec, self._next_pool_uid, foreign)

    @property
    def next_pool_uid(self) -> int:
        """The uid the next pool gets: a reloaded backend continues from it, so peers never
        see one uid name two pools of this node's epoch."""
        return self._next_pool_uid + 1

    @property
    def next_version(self) -> int:
        """The version the next put gets: a reloaded backend continues from it."""
        return self._version + 1

    def continue_after(self, version: int = 0, pool_uid: int = 0) -> None:
        """Number later puts and pools above a `version` and a `pool_uid` recovered from peers."""
        self._version = max(self._version, version)
        self._next_pool_uid = max(self._next_pool_uid, pool_uid)

    # -- clients and pools -------------------------------------------------------------------

    @property
    def client_count(self) -> int:
        return len(self._clients)

    @property
    def application_count(self) -> int:
        """The clients that are applications, not origins this node holds pages for."""
        return len(self._clients) - self._foreign_clients

    def pool(self, client: str, pool_id: int) -> Pool:
        """Pool `pool_id` of `client` (an application's: foreign pools are reached only through
        `ramster.holder.foreign`), or a named error."""
        pools = self._clients.get(client)
        pool = pools.get(pool_id) if pools is not None else None
        if pool is None or pool.foreign:
            if not isinstance(pool_id, int) or isinstance(pool_id, bool) or pool_id < 0:
                raise InvalidArgument.field("pool_id", pool_id, "an int >= 0")
            raise PoolNotFound(f"pool_id {pool_id} does not exist for client {shown(client)}")
        return pool

    def client_names(self, prefix: str = "") -> list[str]:
        """The clients holding pools whose name starts with `prefix`."""
        return [client for client in self._clients if client.startswith(prefix)]

    def client_pools(self, client: str) -> Mapping[int, Pool]:
        """The pools of `client` by pool id (none if it has no pool)."""
        return self._clients.get(client, {})

    def place_pool(self, client: str, pool_id: int, pool: Pool) -> None:
        """Put `pool` under `client` as a new `pool_id` (a pool made elsewhere, or taken from
        another client). A pool held for a peer is charged to the store while it is placed,
        and so is its client while it has pools (`FOREIGN_POOL_BYTES`, `FOREIGN_CLIENT_BYTES`):
        a peer makes this node keep nothing its budget does not count. ResourceExhausted, and
        nothing placed, if they do not fit even with every ephemeral page evicted."""
        pools = self._clients.get(client)
        if pool.foreign:
            cost = FOREIGN_POOL_BYTES + (0 if pools else FOREIGN_CLIENT_BYTES)
            evicted = self.store.reserve(cost)
            if evicted is None:
                raise ResourceExhausted(
                    f"no room for pool {pool.uid} of {client}: this node's budget is full of "
                    "pages that cannot be evicted"
                )
            self._forget(evicted)
        if pools is None:
            pools = self._clients[client] = {}
            self._foreign_clients += pool.foreign
        pools[pool_id] = pool
        if application_client(client):
            self._meter(pool, owner_scope(client))

    def remove_pool(self, client: str, pool_id: int) -> Pool | None:
        """Take pool `pool_id` from `client`, and the client once it has no pool left; the
        pool's pages stay until `drop_pool`. None if there was no such pool."""
        pools = self._clients.get(client, {})
        pool = pools.pop(pool_id, None)
        gone = client in self._clients and not pools
        if gone:
            del self._clients[client]
        if pool is not None and pool.foreign:
            self._foreign_gone(1, gone)
        return pool

    def remove_client(self, client: str) -> dict[int, Pool]:
        """Take `client` with every pool it has, by pool id; their pages stay until `drop_pool`."""
        pools = self._clients.pop(client)
        foreign = sum(pool.foreign for pool in pools.values())
        if foreign:
            self._foreign_gone(foreign, True)
        return pools

    def shared_pool(self, scope: str, shared_uuid: uuid.UUID) -> Pool | None:
        """The shared pool of `shared_uuid` in owner scope `scope`
        (`ramster.tmem.keys.owner_scope`), if any client of the scope (or recovery) made it."""
        return self._shared.get((scope, shared_uuid))

    def place_shared(self, scope: str, pool: Pool) -> None:
        """Make `pool` the shared pool of its spec's UUID in owner scope `scope`."""
        assert pool.spec.shared_uuid is not None
        self._shared[scope, pool.spec.shared_uuid] = pool
        self._meter(pool, scope)

    def remove_shared(self, scope: str, pool: Pool) -> None:
        assert pool.spec.shared_uuid is not None
        del self._shared[scope, pool.spec.shared_uuid]

    def own_pools(self) -> Iterator[Pool]:
        """Every pool of this node's own clients (not those held for peers), each once."""
        seen: set[int] = set()
        for client, pools in self._clients.items():
            if client.startswith(FOREIGN_PREFIX):
                continue
            for pool in pools.values():
                if pool.uid not in seen:
                    seen.add(pool.uid)
                    yield pool
        for pool in self._shared.values():
            if pool.uid not in seen:
                seen.add(pool.uid)
                yield pool

    def drop_pool(self, pool: Pool) -> int:
        """Free every page of a pool no client refers to any more; return how many."""
        flushed = pool.pages
        self.elsewhere.forget_pool(pool)
        for obj in list(pool.objects.values()):
            self._free_local(obj)
        self.store.forget_pool(pool.uid)
        if pool.account is not None:
            self.accounts.close(pool.account)
            pool.account = None
        return flushed

    # -- pages -------------------------------------------------------------------------------

    @property
    def objects(self) -> Mapping[int, TmemObject]:
        """Every object of this node, by object id."""
        return self._objects

    @staticmethod
    def lookup(pool: Pool, oid: Oid, index: int) -> tuple[TmemObject | None, int | None]:
        """The object of `oid` and the slot of its page `index`, each None if absent."""
        obj = pool.objects.get(oid)
        return obj, (obj.slot(index) if obj is not None else None)

    def at(self, obj_id: int, index: int) -> tuple[TmemObject | None, int | None]:
        """The object of id `obj_id` and the slot of its page `index`, each None if gone."""
        obj = self._objects.get(obj_id)
        return obj, (obj.slot(index) if obj is not None else None)

    def slot_version(self, slot: int) -> int:
        """The version of the page at an object slot, here or kept elsewhere."""
        return self.elsewhere.version(slot) if slot & REMOTE else self.store.version(slot)

    def stored_page(self, pool: Pool, oid: Oid, index: int) -> tuple[PackedPage, int] | None:
        """The page at the key here, packed as stored, with its version; None if there is none
        or it is kept elsewhere. The page stays."""
        obj, slot = self.lookup(pool, oid, index)
        if obj is None or slot is None or slot & REMOTE:
            return None
        return self.store.read_packed(slot, pool.spec.page_size), self.store.version(slot)

    def put_pool_page(
        self, pool: Pool, oid: Oid, index: int, data: PageData, version: int | None = None
    ) -> PutOutcome:
        """Store a page, replacing any page at the key; `version` None gives it the next
        version of this node (foreign pages keep their origin's version). If the store refuses
        it, the key holds no page. A new key that would take the pool's account past its quota
        is refused (`RejectReason.QUOTA`) and changes nothing; a page replacing another needs
        no more room."""
        obj = pool.objects.get(oid)
        account = pool.account
        # The common put pays one comparison: the key is looked up only if a page more would
        # not fit the quota (a page replacing another needs no room).
        if (
            account is not None
            and account.used + pool.spec.page_size > account.limit
            and (obj is None or obj.slot(index) is None)
        ):
            account.refused += 1
            self._counters["put_quota"] += 1
            return QUOTA_REFUSED
        old = None
        if obj is None:
            obj = self.new_object(pool, oid)
        else:
            # A page put again keeps its place in `obj` (its freed slot there until the new one
            # takes it): in an object of 50,000 pages, taking the key out and in again moved
            # 400 KB of its index, 9.5 us a put (a swap device puts its slots again and again).
            old = obj.slot(index)
            if old is not None:
                self.free_slot(obj, index, old)
        if version is None:
            self._version += 1
            version = self._version
        outcome = self.store_page(obj, index, data, version, remotable=not pool.foreign)
        if isinstance(outcome, Created):
            if old is None:
                obj.insert(index, outcome.slot)
                pool.count(1)
            else:
                obj.replace(index, outcome.slot)
            return Stored(version)
        if old is not None:
            obj.pop(index)
            pool.count(-1)
        if not obj:
            self.unlink_object(obj)
        return outcome

    def store_page(
        self, obj: TmemObject, index: int, data: PageData, version: int, remotable: bool = True
    ) -> Created | Rejected:
        """Have the store keep a page of key `index` of `obj` (not yet in `obj`), and forget the
        keys of the pages it evicted to make room."""
        outcome = self.store.create(
            data,
            obj.pool.spec.persistent,
            version,
            (obj.obj_id << INDEX_BITS) | index,
            remotable=remotable,
            codec=obj.pool.spec.codec,
            pool_uid=obj.pool.uid,
        )
        if outcome.evicted:
            self._forget(outcome.evicted, keep=obj)
        return outcome

    def flush_pool_page(self, pool: Pool, oid: Oid, index: int) -> bool:
        """Remove one page; False if there was none."""
        self._counters["flush_total"] += 1
        obj = pool.objects.get(oid)
        slot = obj.pop(index) if obj is not None else None
        if obj is None or slot is None:
            return False
        self.release(obj, index, slot)
        self._counters["flush_found"] += 1
        return True

    def flush_pool_object(self, pool: Pool, oid: Oid, up_to: int = 0) -> bool:
        """Remove every page of an object (`up_to`: only those of versions up to it); False if
        it had none to remove."""
        self._counters["flobj_total"] += 1
        obj = pool.objects.get(oid)
        if obj is None:
            return False
        version = self.slot_version
        if up_to and any(version(slot) > up_to for _, slot in obj.items()):
            doomed = [(i, slot) for i, slot in obj.items() if version(slot) <= up_to]
            if not doomed:
                return False
            for index, slot in doomed:
                obj.pop(index)
                self.release(obj, index, slot)
        else:
            self.elsewhere.forget_object(obj)
            self._free_local(obj)
        self._counters["flobj_found"] += 1
        return True

    def new_object(self, pool: Pool, oid: Oid) -> TmemObject:
        """An empty object of `oid` in `pool`, charged to the store."""
        obj_id = self._next_obj_id
        self._next_obj_id += 1
        obj = pool.objects[oid] = self._objects[obj_id] = TmemObject(pool, oid, obj_id)
        self.store.charge(OBJECT_BYTES)
        if len(self._objects) > self._counters["obj_count_max"]:
            self._counters["obj_count_max"] = len(self._objects)
        return obj

    def release(self, obj: TmemObject, index: int, slot: int) -> None:
        """Free a slot already popped from `obj`; drop `obj` once it is empty."""
        self.elsewhere.forget(obj, index, slot)
        if not slot & REMOTE:
            self.store.free(slot)
        obj.pool.count(-1)
        if not obj:
            self.unlink_object(obj)

    def free_slot(self, obj: TmemObject, index: int, slot: int) -> None:
        """Free the page at `slot` of key `index` of `obj`, and let go of its copies kept
        elsewhere."""
        self.elsewhere.forget(obj, index, slot)
        if not slot & REMOTE:
            self.store.free(slot)

    def page_gone(self, obj: TmemObject) -> None:
        """A page of `obj`, already popped and freed, is gone: count it out of its pool, and
        drop `obj` once it is empty."""
        obj.pool.count(-1)
        if not obj:
            self.unlink_object(obj)

    def unlink_object(self, obj: TmemObject) -> None:
        """Drop an object whose pages are gone."""
        del obj.pool.objects[obj.oid]
        del self._objects[obj.obj_id]
        self.store.charge(-OBJECT_BYTES)

    def counters(self) -> dict[str, int]:
        counters = dict(self._counters)
        counters["obj_count"] = len(self._objects)
        counters["pool_count"] = sum(map(len, self._clients.values()))
        counters["client_count"] = len(self._clients)
        counters["foreign_eph_pages"] = counters["foreign_pers_pages"] = 0
        for pools in self._clients.values():
            for pool in pools.values():
                if pool.foreign:
                    name = "foreign_pers_pages" if pool.spec.persistent else "foreign_eph_pages"
                    counters[name] += pool.pages
        return {**counters, **self.elsewhere.counters()}

    # -- internals ---------------------------------------------------------------------------

    def _free_local(self, obj: TmemObject) -> None:
        """Drop `obj` and free its pages here (its copies elsewhere are let go already)."""
        free = self.store.free
        for _, slot in obj.items():
            if not slot & REMOTE:
                free(slot)
        obj.pool.count(-len(obj))
        self.unlink_object(obj)

    def _meter(self, pool: Pool, scope: str) -> None:
        """Charge `pool`, with the pages it has, to the account of owner scope `scope` if it is
        not charged yet: a pool of an application's identity (`ramster.tmem.quota`)."""
        if pool.account is not None or pool.foreign or not scope:
            return
        account = pool.account = self.accounts.open(scope)
        account.pages += pool.pages
        account.used += pool.pages * pool.spec.page_size

    def _foreign_gone(self, pools: int, client: bool) -> None:
        """Release the charge of `pools` pools held for a peer, and of their client if it went."""
        self._foreign_clients -= client
        self.store.charge(-pools * FOREIGN_POOL_BYTES - client * FOREIGN_CLIENT_BYTES)

    def _forget(self, evicted: Iterable[int], keep: TmemObject | None = None) -> None:
        """Drop the keys of pages the store evicted (their slots are already free)."""
        for backref in evicted:
            obj = self._objects[backref >> INDEX_BITS]
            obj.pop(backref & INDEX_MASK)
            obj.pool.count(-1)
            if not obj and obj is not keep:
                self.unlink_object(obj)
