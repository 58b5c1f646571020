"""The tmem host of one node: clients, pools and the put/get/flush rules (reference §A1).

Pure and synchronous: no I/O, no event loop. Requests are validated here once and refused with a
named `RamsterError`; a put the store refuses is an outcome (`Rejected`), not an error. Page bytes
live in a `PageStore`; this module decides which keys exist, which get frees, and which version a
page has. The network edges (`ramster.rpc`) call it; the frontends reach it through an adapter.
In process a get frees at once (`get`, `get_many`); over the network it reads (`get_many_packed`)
and frees only once its answer is on its way (`take`): a caller that gave up loses no page.
Code outside ramster/tmem changes the tree through public methods only (ruff's SLF001 holds in
ramster/remote and ramster/holder): by client and pool id for applications, by `Pool` for the
node's own code (the section "the table by pool").
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ramster.errors import FailedPrecondition, InvalidArgument, PoolNotFound, ResourceExhausted
from ramster.page import PackedPage, check_page_length
from ramster.tmem.keys import (
    U32_MAX,
    U64_MAX,
    Oid,
    OidLike,
    PoolSpec,
    TmemLimits,
    as_oid,
    check_index,
)
from ramster.tmem.pool import INDEX_BYTES_PER_PAGE, OBJECT_BYTES, Pool, PoolRecord, TmemObject
from ramster.tmem.remote import (
    REMOTE,
    REMOTE_HANDLE_BYTES,
    RemoteFlush,
    RemoteHandles,
    RemoteRef,
)
from ramster.tmem.store import Created, PageStore, Rejected

INDEX_BITS = 32
INDEX_MASK = (1 << INDEX_BITS) - 1

PageData = bytes | PackedPage
"""A page as a client hands it over: raw bytes, or packed (`ramster.page`)."""
T = TypeVar("T")

FOREIGN_PREFIX = "peer:"
"""Client names of the pages held for other nodes (`ramster.holder.foreign`)."""

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
"""RAMster's debugfs names (reference §C4) for what the core decides; the remote layer counts
the flushes it sends."""


@dataclass(frozen=True, slots=True)
class Stored:
    """A put succeeded; the page now has `version` (unique and increasing on this host)."""

    version: int


PutOutcome = Stored | Rejected


@dataclass(frozen=True, slots=True)
class Hit:
    """A page a get found, packed as stored, with the object, index and version it was found
    under: a get that frees hands it to `Tmem.take` once its answer is on its way."""

    page: PackedPage
    obj_id: int
    index: int
    version: int


class Tmem:
    """All pools of one node, for every client (applications and, later, peer nodes)."""

    def __init__(
        self,
        store: PageStore,
        limits: TmemLimits | None = None,
        first_pool_uid: int = 1,
        first_version: int = 1,
    ) -> None:
        self._store = store
        self._limits = limits or TmemLimits()
        self._clients: dict[str, dict[int, Pool]] = {}
        self._shared: dict[uuid.UUID, Pool] = {}
        self._objects: dict[int, TmemObject] = {}
        self._next_obj_id = 0
        self._next_pool_uid = first_pool_uid - 1
        self._version = first_version - 1
        self._remote = RemoteHandles()
        self._replicas: dict[int, int] = {}
        """The peer holding the second copy of a persistent page, by the page's version."""
        self._unclaimed: set[tuple[str, int]] = set()
        """Recovered pools no client has asked for again (`ramster.remote.restore`)."""
        self.remote_flushes: list[RemoteFlush] = []
        """Copies peers hold that must go, oldest first; the remote layer drains it."""
        self._counters = dict.fromkeys(
            (
                "obj_count_max",
                "flush_total",
                "flush_found",
                "flobj_total",
                "flobj_found",
                *REMOTE_COUNTERS,
            ),
            0,
        )

    def __repr__(self) -> str:
        pools = sum(len(p) for p in self._clients.values())
        pages = sum(obj_pages for obj_pages in map(len, self._objects.values()))
        return (
            f"<Tmem clients={len(self._clients)} pools={pools} "
            f"objects={len(self._objects)} pages={pages}>"
        )

    # -- pools -------------------------------------------------------------------------------

    def new_pool(self, client: str, spec: PoolSpec) -> int:
        """Create a pool for `client` (or join the shared pool of `spec.shared_uuid`)."""
        if client.startswith(FOREIGN_PREFIX):
            raise InvalidArgument.field(
                "client", client, f"a name not starting with {FOREIGN_PREFIX!r} (kept for peers)"
            )
        pools = self._clients.get(client)
        if pools is not None and self._unclaimed:
            claimed = self._claim(client, pools, spec)
            if claimed is not None:
                return claimed
        if pools is None and len(self._clients) >= self._limits.max_clients:
            raise ResourceExhausted(
                f"clients {len(self._clients)} reached max_clients {self._limits.max_clients}"
            )
        limit = self._limits.max_pools_per_client
        if pools is not None and len(pools) >= limit:
            raise ResourceExhausted(
                f"client {client!r} holds {len(pools)} pools: max_pools_per_client is {limit}"
            )
        pool = self._join_shared(spec) if spec.shared_uuid is not None else self._new_pool(spec)
        if pools is None:  # only now: a refused join must not leave a client without pools
            pools = self._clients[client] = {}
        pool_id = next(i for i in range(limit) if i not in pools)
        pools[pool_id] = pool
        if pool.owner is None:
            pool.owner = (client, pool_id)
        return pool_id

    def _claim(self, client: str, pools: dict[int, Pool], spec: PoolSpec) -> int | None:
        """The lowest recovered pool of `client` with `spec` nobody asked for yet, or None."""
        for pool_id in sorted(pools):
            if (client, pool_id) in self._unclaimed and pools[pool_id].spec == spec:
                self._unclaimed.discard((client, pool_id))
                return pool_id
        return None

    def install_recovered(self, record: PoolRecord) -> Pool | None:
        """A pool recovered from peers (`ramster.remote.restore`), waiting for its client; None
        if its place is taken (or the record names a client no application may have)."""
        if record.client.startswith(FOREIGN_PREFIX) or not record.client:
            return None
        pool = Pool(record.spec, record.uid, owner=(record.client, record.pool_id))
        shared_uuid = record.spec.shared_uuid
        if shared_uuid is not None:
            if shared_uuid in self._shared:
                return None
            pool.refs = 0  # joined by the first client that asks for it
            self._shared[shared_uuid] = pool
            return pool
        pools = self._clients.setdefault(record.client, {})
        if record.pool_id in pools:
            return None
        pools[record.pool_id] = pool
        self._unclaimed.add((record.client, record.pool_id))
        return pool

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

    def _join_shared(self, spec: PoolSpec) -> Pool:
        assert spec.shared_uuid is not None
        pool = self._shared.get(spec.shared_uuid)
        if pool is None:
            pool = self._shared[spec.shared_uuid] = self._new_pool(spec)
            return pool
        if pool.spec != spec:
            raise FailedPrecondition(
                f"shared pool {spec.shared_uuid} is {pool.spec.describe()}, not {spec.describe()}"
            )
        pool.refs += 1
        return pool

    def destroy_pool(self, client: str, pool_id: int) -> int:
        """Give up `client`'s pool; return the pages flushed (0 while other sharers remain)."""
        pool = self._pool(client, pool_id)
        self._unclaimed.discard((client, pool_id))
        del self._clients[client][pool_id]
        if not self._clients[client]:
            del self._clients[client]
        pool.refs -= 1
        if pool.refs:
            return 0
        if pool.spec.shared_uuid is not None:
            del self._shared[pool.spec.shared_uuid]
        return self.drop_pool(pool)

    def _new_pool(self, spec: PoolSpec, foreign: bool = False) -> Pool:
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

    def drop_pool(self, pool: Pool) -> int:
        """Free every page of a pool no handle refers to any more; return how many."""
        flushed = pool.pages
        holders: set[int] = set()
        for obj in list(pool.objects.values()):
            holders |= self._drop_object(obj, flush_remote=False)
        self.remote_flushes.extend(RemoteFlush(node, pool.uid) for node in sorted(holders))
        return flushed

    def pool_spec(self, client: str, pool_id: int) -> PoolSpec:
        return self._pool(client, pool_id).spec

    def _pool(self, client: str, pool_id: int) -> Pool:
        pools = self._clients.get(client)
        pool = pools.get(pool_id) if pools is not None else None
        if pool is None or pool.foreign:  # foreign pools are reached only through `foreign`
            if not isinstance(pool_id, int) or isinstance(pool_id, bool) or pool_id < 0:
                raise InvalidArgument.field("pool_id", pool_id, "an int >= 0")
            raise PoolNotFound(f"pool_id {pool_id} does not exist for client {client!r}")
        return pool

    # -- pages -------------------------------------------------------------------------------

    def put(
        self, client: str, pool_id: int, oid: OidLike, index: int, data: PageData
    ) -> PutOutcome:
        """Store one page; a duplicate put replaces the old page, and if it fails, both are gone."""
        pool = self._pool(client, pool_id)
        key_oid = as_oid(oid)
        check_index(index)
        _check_length(data, pool.spec.page_size, "data")
        return self.put_pool_page(pool, key_oid, index, data)

    def put_many(
        self, client: str, pool_id: int, pages: Sequence[tuple[OidLike, int, PageData]]
    ) -> list[PutOutcome]:
        """Put a batch, raw or packed pages; every page is validated before any is stored."""
        pool = self._pool(client, pool_id)
        size = pool.spec.page_size
        checked = []
        for i, (oid, index, data) in enumerate(pages):
            # The common case checked inline; field names are only built for a refusal.
            if type(oid) is int and 0 <= oid <= U64_MAX:
                key_oid: Oid = (oid, 0, 0)
            else:
                key_oid = as_oid(oid, f"pages[{i}].oid")
            if not (type(index) is int and 0 <= index <= U32_MAX):
                check_index(index, f"pages[{i}].index")
            if not (type(data) is bytes and len(data) == size):
                _check_length(data, size, f"pages[{i}].data")
            checked.append((key_oid, index, data))
        put = self.put_pool_page
        return [put(pool, oid, index, data) for oid, index, data in checked]

    def get(
        self, client: str, pool_id: int, oid: OidLike, index: int, free: bool | None = None
    ) -> bytes | None:
        """The page, or None. `free` None means the pool's rule; True frees, False keeps."""
        pool = self._pool(client, pool_id)
        page = self._get(pool, as_oid(oid), check_index(index), free, self._store.read)
        return _local(page)

    def get_many(
        self,
        client: str,
        pool_id: int,
        keys: Sequence[tuple[OidLike, int]],
        free: bool | None = None,
    ) -> list[bytes | None]:
        """Get a batch; every key is validated before any page is read or freed. For pages that
        may be on peers, use `get_many_packed`, `shipping.localify` and `take`."""
        pool = self._pool(client, pool_id)
        read = self._store.read
        return [_local(self._get(pool, o, i, free, read)) for o, i in _checked_keys(keys)]

    def get_many_packed(
        self, client: str, pool_id: int, keys: Sequence[tuple[OidLike, int]]
    ) -> list[Hit | RemoteRef | None]:
        """Read a batch, frees nothing: each page packed as stored (a `Hit`), a `RemoteRef` for a
        page on a peer (fetch it and pass it to `shipping.localify`), or None. A get that frees
        (`frees_on_get`) then calls `take`. Every key is validated before any page is read."""
        pool = self._pool(client, pool_id)
        found: list[Hit | RemoteRef | None] = []
        for oid, index in _checked_keys(keys):
            obj, slot = self._lookup(pool, oid, index)
            if obj is None or slot is None:
                found.append(None)
            elif slot & REMOTE:
                found.append(self._remote_ref(obj, index, slot))
            else:
                page = self._store.read_packed(slot, pool.spec.page_size)
                found.append(Hit(page, obj.obj_id, index, self._store.version(slot)))
        return found

    def frees_on_get(self, client: str, pool_id: int, free: bool | None) -> bool:
        """Whether a get of the pool frees what it finds: `free`, or the pool's rule if None."""
        return _frees(self._pool(client, pool_id), free)

    def take(self, hits: Sequence[Hit]) -> list[bool]:
        """End a get that frees, once its answer is on its way: free each hit's page (a page on
        a peer: its handle, and queue the flushes of every copy). False for a hit whose key no
        longer holds that version (flushed, put again, or taken by another get meanwhile): its
        answer is a miss."""
        taken = []
        for hit in hits:
            obj = self._objects.get(hit.obj_id)
            slot = obj.slot(hit.index) if obj is not None else None
            if obj is None or slot is None or self.slot_version(slot) != hit.version:
                taken.append(False)
                continue
            obj.pop(hit.index)
            self._release(obj, hit.index, slot)
            taken.append(True)
        return taken

    def flush_page(self, client: str, pool_id: int, oid: OidLike, index: int) -> bool:
        """Remove one page; False if there was none."""
        pool = self._pool(client, pool_id)
        return self.flush_pool_page(pool, as_oid(oid), check_index(index))

    def flush_many(
        self, client: str, pool_id: int, keys: Sequence[tuple[OidLike, int]]
    ) -> list[bool]:
        """Flush a batch of pages; every key is validated before any page is flushed."""
        pool = self._pool(client, pool_id)
        return [self.flush_pool_page(pool, oid, index) for oid, index in _checked_keys(keys)]

    def flush_object(self, client: str, pool_id: int, oid: OidLike) -> bool:
        """Remove every page of an object; False if the object had none."""
        pool = self._pool(client, pool_id)
        return self.flush_pool_object(pool, as_oid(oid))

    def flush_objects(self, client: str, pool_id: int, oids: Sequence[OidLike]) -> list[bool]:
        """Flush a batch of objects; every oid is validated before any object is flushed."""
        pool = self._pool(client, pool_id)
        checked = [as_oid(oid, f"oids[{i}]") for i, oid in enumerate(oids)]
        return [self.flush_pool_object(pool, oid) for oid in checked]

    def page_version(self, client: str, pool_id: int, oid: OidLike, index: int) -> int | None:
        """The version of the page at the key, or None if absent (for compare-and-swap)."""
        obj = self._pool(client, pool_id).objects.get(as_oid(oid))
        check_index(index)  # also when the object is absent: a bad index is never a miss
        slot = obj.slot(index) if obj is not None else None
        if slot is None:
            return None
        return self.slot_version(slot)

    def counters(self) -> dict[str, int]:
        counters = dict(self._counters)
        counters["obj_count"] = len(self._objects)
        counters["pool_count"] = sum(len(pools) for pools in self._clients.values())
        counters["client_count"] = len(self._clients)
        counters["remote_pages"] = len(self._remote)
        counters["remote_pers_pages"] = self._remote.persistent
        counters["pers_pages_replicated"] = len(self._replicas)
        for pools in self._clients.values():
            for pool in pools.values():
                if pool.foreign:
                    name = "foreign_pers_pages" if pool.spec.persistent else "foreign_eph_pages"
                    counters[name] = counters.get(name, 0) + pool.pages
        counters.setdefault("foreign_eph_pages", 0)
        counters.setdefault("foreign_pers_pages", 0)
        return counters

    # -- the table by pool: the door for ramster.holder and ramster.remote ---------------------
    # These reach pools and pages by `Pool`, not by (client, pool id), and validate nothing: the
    # callers are this node's own code (the holder of foreign pages, restore after a restart).

    def client_names(self, prefix: str = "") -> list[str]:
        """The clients holding pools whose name starts with `prefix`."""
        return [client for client in self._clients if client.startswith(prefix)]

    def client_pools(self, client: str) -> Mapping[int, Pool]:
        """The pools of `client` by pool id (none if it has no pool)."""
        return self._clients.get(client, {})

    def place_pool(self, client: str, pool_id: int, pool: Pool) -> None:
        """Put `pool` under `client` as `pool_id` (a pool made elsewhere, or taken from another
        client)."""
        self._clients.setdefault(client, {})[pool_id] = pool

    def remove_pool(self, client: str, pool_id: int) -> Pool | None:
        """Take pool `pool_id` from `client`, and the client once it has no pool left; the
        pool's pages stay until `drop_pool`. None if there was no such pool."""
        pools = self._clients.get(client, {})
        pool = pools.pop(pool_id, None)
        if client in self._clients and not pools:
            del self._clients[client]
        return pool

    def remove_client(self, client: str) -> dict[int, Pool]:
        """Take `client` with every pool it has, by pool id; their pages stay until `drop_pool`."""
        return self._clients.pop(client)

    def slot_version(self, slot: int) -> int:
        """The version of the page at an object slot, local or remote."""
        return self._remote.version(slot) if slot & REMOTE else self._store.version(slot)

    def continue_after(self, version: int = 0, pool_uid: int = 0) -> None:
        """Number later puts and pools above a `version` and a `pool_uid` recovered from peers."""
        self._version = max(self._version, version)
        self._next_pool_uid = max(self._next_pool_uid, pool_uid)

    def stored_page(self, pool: Pool, oid: Oid, index: int) -> tuple[PackedPage, int] | None:
        """The page at the key here, packed as stored, with its version; None if there is none
        or it is on a peer. The page stays."""
        obj, slot = self._lookup(pool, oid, index)
        if obj is None or slot is None or slot & REMOTE:
            return None
        return self._store.read_packed(slot, pool.spec.page_size), self._store.version(slot)

    def put_pool_page(
        self, pool: Pool, oid: Oid, index: int, data: PageData, version: int | None = None
    ) -> PutOutcome:
        """Store a page; `version` None gives it the next version of this host (foreign pages
        keep their origin's version)."""
        obj = pool.objects.get(oid)
        if obj is None:
            obj = self._new_object(pool, oid)
        else:
            old = obj.pop(index)
            if old is not None:
                self._free_slot(obj, index, old)
                pool.pages -= 1
        if version is None:
            self._version += 1
            version = self._version
        outcome = self._store.create(
            data,
            pool.spec.persistent,
            version,
            (obj.obj_id << INDEX_BITS) | index,
            remotable=not pool.foreign,
        )
        if outcome.evicted:
            self._forget(outcome.evicted, keep=obj)
        if isinstance(outcome, Created):
            obj.insert(index, outcome.slot)
            pool.pages += 1
            return Stored(version)
        if not obj:
            self._unlink_object(obj)
        return outcome

    def flush_pool_page(self, pool: Pool, oid: Oid, index: int) -> bool:
        self._counters["flush_total"] += 1
        obj = pool.objects.get(oid)
        slot = obj.pop(index) if obj is not None else None
        if obj is None or slot is None:
            return False
        self._release(obj, index, slot)
        self._counters["flush_found"] += 1
        return True

    def flush_pool_object(self, pool: Pool, oid: Oid) -> bool:
        self._counters["flobj_total"] += 1
        obj = pool.objects.get(oid)
        if obj is None:
            return False
        self._drop_object(obj)
        self._counters["flobj_found"] += 1
        return True

    # -- internals ---------------------------------------------------------------------------

    def _get(
        self, pool: Pool, oid: Oid, index: int, free: bool | None, read: Callable[[int, int], T]
    ) -> T | RemoteRef | None:
        obj, slot = self._lookup(pool, oid, index)
        if obj is None or slot is None:
            return None
        if slot & REMOTE:
            return self._remote_ref(obj, index, slot)
        data = read(slot, pool.spec.page_size)
        if _frees(pool, free):
            obj.pop(index)
            self._release(obj, index, slot)
        return data

    @staticmethod
    def _lookup(pool: Pool, oid: Oid, index: int) -> tuple[TmemObject | None, int | None]:
        obj = pool.objects.get(oid)
        return obj, (obj.slot(index) if obj is not None else None)

    def _remote_ref(self, obj: TmemObject, index: int, handle: int) -> RemoteRef:
        pool = obj.pool
        version = self._remote.version(handle)
        return RemoteRef(
            node=self._remote.node(handle),
            obj_id=obj.obj_id,
            pool_uid=pool.uid,
            persistent=pool.spec.persistent,
            oid=obj.oid,
            index=index,
            version=version,
            page_size=pool.spec.page_size,
            replica=self._replicas.get(version),
        )

    def _new_object(self, pool: Pool, oid: Oid) -> TmemObject:
        obj_id = self._next_obj_id
        self._next_obj_id += 1
        obj = pool.objects[oid] = self._objects[obj_id] = TmemObject(pool, oid, obj_id)
        self._store.charge(OBJECT_BYTES)
        if len(self._objects) > self._counters["obj_count_max"]:
            self._counters["obj_count_max"] = len(self._objects)
        return obj

    def _release(self, obj: TmemObject, index: int, slot: int) -> None:
        """Free a slot already popped from `obj`; drop `obj` once it is empty."""
        self._free_slot(obj, index, slot)
        obj.pool.pages -= 1
        if not obj:
            self._unlink_object(obj)

    def _remote_add(self, node: int, version: int, persistent: bool) -> int:
        """A new remote handle, charged to the store: it and its index entry stay in memory."""
        self._store.charge(REMOTE_PAGE_BYTES)
        return self._remote.add(node, version, persistent)

    def _remote_remove(self, handle: int, persistent: bool) -> int:
        """Forget a remote handle; return the node that held its page."""
        self._store.charge(-REMOTE_PAGE_BYTES)
        return self._remote.remove(handle, persistent)

    def _free_slot(self, obj: TmemObject, index: int, slot: int) -> None:
        """Free a local page, or forget a remote one and queue the flush of the peer's copy;
        queue the flush of its replica too."""
        if self._replicas:
            self._forget_replica(obj, index, slot)
        if slot & REMOTE:
            version = self._remote.version(slot)
            node = self._remote_remove(slot, obj.pool.spec.persistent)
            self.remote_flushes.append(RemoteFlush(node, obj.pool.uid, obj.oid, index, version))
        else:
            self._store.free(slot)

    def _forget_replica(self, obj: TmemObject, index: int, slot: int) -> None:
        """Forget the replica of the page at `slot` (local or remote) and queue its flush."""
        if obj.pool.foreign:  # foreign pages carry their origin's versions: never replicas here
            return
        version = self.slot_version(slot)
        node = self._replicas.pop(version, None)
        if node is not None:
            self.remote_flushes.append(RemoteFlush(node, obj.pool.uid, obj.oid, index, version))

    def _drop_object(self, obj: TmemObject, flush_remote: bool = True) -> set[int]:
        """Free every page of `obj`; return the peers that held some. With `flush_remote`, queue
        one object flush per such peer (a pool destroy queues pool flushes instead)."""
        holders = set()
        persistent = obj.pool.spec.persistent
        replicas = self._replicas if persistent and not obj.pool.foreign else {}
        for _, slot in obj.items():
            if replicas:
                version = self.slot_version(slot)
                replica = replicas.pop(version, None)
                if replica is not None:
                    holders.add(replica)
            if slot & REMOTE:
                holders.add(self._remote_remove(slot, persistent))
            else:
                self._store.free(slot)
        obj.pool.pages -= len(obj)
        self._unlink_object(obj)
        if flush_remote:
            pool_uid = obj.pool.uid
            self.remote_flushes.extend(RemoteFlush(n, pool_uid, obj.oid) for n in sorted(holders))
        return holders

    def _unlink_object(self, obj: TmemObject) -> None:
        del obj.pool.objects[obj.oid]
        del self._objects[obj.obj_id]
        self._store.charge(-OBJECT_BYTES)

    def _forget(self, evicted: Iterable[int], keep: TmemObject) -> None:
        """Drop the keys of pages the store evicted (their slots are already free)."""
        for backref in evicted:
            obj = self._objects[backref >> INDEX_BITS]
            obj.pop(backref & INDEX_MASK)
            obj.pool.pages -= 1
            if not obj and obj is not keep:
                self._unlink_object(obj)


def _frees(pool: Pool, free: bool | None) -> bool:
    """The one rule of which gets free: the caller's `free`, else the pool's (private ephemeral
    pools are exclusive caches)."""
    return pool.frees_on_get if free is None else free


def _local(page: bytes | RemoteRef | None) -> bytes | None:
    if isinstance(page, RemoteRef):
        raise FailedPrecondition(
            f"the page is on node {page.node}: read it with get_many_packed and localify"
        )
    return page


def _checked_keys(keys: Sequence[tuple[OidLike, int]]) -> list[tuple[Oid, int]]:
    return [
        (as_oid(oid, f"keys[{i}].oid"), check_index(index, f"keys[{i}].index"))
        for i, (oid, index) in enumerate(keys)
    ]


def _check_length(data: PageData, page_size: int, field: str) -> None:
    length = data.page_size if isinstance(data, PackedPage) else len(data)
    check_page_length(length, page_size, field)
