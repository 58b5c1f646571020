"""The tmem host of one node: the put/get/flush rules, pools of clients, validation (reference
§A1).

Pure and synchronous: no I/O, no event loop. Requests are validated here once and refused with a
named `RamsterError`; a put the store refuses is an outcome (`Rejected`), not an error. The tree
itself (pools, objects, slots, versions) is the `PageTable` (`ramster.tmem.table`), the one
surface the node's own code changes; page bytes live in its `PageStore`, pages kept on other
nodes behind its `Elsewhere` (`ramster.tmem.elsewhere`). The network edges (`ramster.rpc`,
`ramster.tiered`) call this; the frontends reach it through an adapter. In process a get frees at
once (`get`, `get_many`); over the network it reads (`get_many_packed`) and frees only once its
answer is on its way (`take`): a caller that gave up loses no page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from ramster.errors import (
    FailedPrecondition,
    InvalidArgument,
    PoolNotFound,
    ResourceExhausted,
    shown,
)
from ramster.page import PackedPage, check_page_length
from ramster.tmem.elsewhere import REMOTE, ElsewhereT, PageAway
from ramster.tmem.keys import (
    INVALID_OID,
    U32_MAX,
    U64_MAX,
    Oid,
    OidLike,
    PoolSpec,
    TmemLimits,
    as_oid,
    check_index,
    owner_scope,
)
from ramster.tmem.pool import Pool, PoolRecord
from ramster.tmem.table import FOREIGN_PREFIX, PageData, PageTable, PutOutcome

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Hit:
    """A page a get found, packed as stored, with the object, index and version it was found
    under: a get that frees hands it to `Tmem.take` once its answer is on its way."""

    page: PackedPage
    obj_id: int
    index: int
    version: int


class Tmem(Generic[ElsewhereT]):
    """All pools of one node, for every client (applications and, later, peer nodes)."""

    def __init__(self, table: PageTable[ElsewhereT], limits: TmemLimits | None = None) -> None:
        self.table = table
        self._limits = limits or TmemLimits()
        self._unclaimed: set[tuple[str, int]] = set()
        """Recovered pools no client has asked for again (`ramster.remote.restore`)."""

    def __repr__(self) -> str:
        return f"<Tmem {self.table.describe()}>"

    @property
    def limits(self) -> TmemLimits:
        return self._limits

    # -- pools -------------------------------------------------------------------------------

    def new_pool(self, client: str, spec: PoolSpec) -> int:
        """Create a pool for `client` (or join the shared pool of `spec.shared_uuid` in the
        client's owner scope, `ramster.tmem.keys.owner_scope`)."""
        if client.startswith(FOREIGN_PREFIX):
            raise InvalidArgument.field(
                "client", client, f"a name not starting with {FOREIGN_PREFIX!r} (kept for peers)"
            )
        table = self.table
        pools = table.client_pools(client)
        if pools and self._unclaimed:
            claimed = self._claim(client, pools, spec)
            if claimed is not None:
                return claimed
        if not pools and table.application_count >= self._limits.max_clients:
            raise ResourceExhausted(
                f"clients {table.application_count} reached max_clients {self._limits.max_clients}"
            )
        limit = self._limits.max_pools_per_client
        if len(pools) >= limit:
            raise ResourceExhausted(
                f"client {shown(client)} holds {len(pools)} pools: max_pools_per_client is {limit}"
            )
        pool = (
            self._join_shared(owner_scope(client), spec)
            if spec.shared_uuid is not None
            else table.new_pool(spec)
        )
        # Placed only now: a refused join must not leave a client without pools.
        pool_id = next(i for i in range(limit) if i not in pools)
        table.place_pool(client, pool_id, pool)
        if pool.owner is None:
            pool.owner = (client, pool_id)
        return pool_id

    def _claim(self, client: str, pools: Mapping[int, Pool], spec: PoolSpec) -> int | None:
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
        if record.spec.shared_uuid is not None:
            scope = owner_scope(record.client)
            if self.table.shared_pool(scope, record.spec.shared_uuid) is not None:
                return None
            pool.refs = 0  # joined by the first client of its scope that asks for it
            self.table.place_shared(scope, pool)
            return pool
        if record.pool_id in self.table.client_pools(record.client):
            return None
        self.table.place_pool(record.client, record.pool_id, pool)
        self._unclaimed.add((record.client, record.pool_id))
        return pool

    def _join_shared(self, scope: str, spec: PoolSpec) -> Pool:
        assert spec.shared_uuid is not None
        pool = self.table.shared_pool(scope, spec.shared_uuid)
        if pool is None:
            pool = self.table.new_pool(spec)
            self.table.place_shared(scope, pool)
            return pool
        if pool.spec != spec:
            raise FailedPrecondition(
                f"shared pool {spec.shared_uuid} is {pool.spec.describe()}, not {spec.describe()}"
            )
        pool.refs += 1
        return pool

    def destroy_pool(self, client: str, pool_id: int) -> int:
        """Give up `client`'s pool; return the pages flushed (0 while other sharers remain)."""
        pool = self.table.pool(client, pool_id)
        self._unclaimed.discard((client, pool_id))
        self.table.remove_pool(client, pool_id)
        pool.refs -= 1
        if pool.refs:
            return 0
        if pool.spec.shared_uuid is not None:
            self.table.remove_shared(owner_scope(client), pool)
        return self.table.drop_pool(pool)

    def pool_spec(self, client: str, pool_id: int, uid: int = 0) -> PoolSpec:
        """The spec of `client`'s pool `pool_id`; with a `uid` (0: any), only while the id still
        names the pool of that uid: an id freed by a destroy or a session's expiry may name a
        newer pool of the client, whose pages a stale caller must never reach."""
        pool = self.table.pool(client, pool_id)
        if uid and pool.uid != uid:
            raise PoolNotFound(
                f"pool_id {pool_id} of client {shown(client)} is no longer pool {uid}: it was "
                "destroyed or expired (create a new pool)"
            )
        return pool.spec

    def pool_uid(self, client: str, pool_id: int) -> int:
        """The uid of `client`'s pool `pool_id`: what names it and no later pool of that id."""
        return self.table.pool(client, pool_id).uid

    # -- pages -------------------------------------------------------------------------------

    def put(
        self, client: str, pool_id: int, oid: OidLike, index: int, data: PageData
    ) -> PutOutcome:
        """Store one page; a duplicate put replaces the old page, and if it fails, both are gone."""
        pool = self.table.pool(client, pool_id)
        key_oid = as_oid(oid)
        check_index(index)
        _check_length(data, pool.spec.page_size, "data")
        return self.table.put_pool_page(pool, key_oid, index, data)

    def put_many(
        self, client: str, pool_id: int, pages: Sequence[tuple[OidLike, int, PageData]]
    ) -> list[PutOutcome]:
        """Put a batch, raw or packed pages; every page is validated before any is stored."""
        pool = self.table.pool(client, pool_id)
        size = pool.spec.page_size
        checked = []
        for i, (oid, index, data) in enumerate(pages):
            key = _checked_key(oid, index, "pages", i)
            # The common case checked inline; field names are only built for a refusal.
            if not (type(data) is PackedPage and data.page_size == size) and not (
                type(data) is bytes and len(data) == size
            ):
                _check_length(data, size, f"pages[{i}].data")
            checked.append((*key, data))
        put = self.table.put_pool_page
        return [put(pool, oid, index, data) for oid, index, data in checked]

    def get(
        self, client: str, pool_id: int, oid: OidLike, index: int, free: bool | None = None
    ) -> bytes | None:
        """The page, or None. `free` None means the pool's rule; True frees, False keeps."""
        pool = self.table.pool(client, pool_id)
        read = self.table.store.read
        return _here(self._get(pool, as_oid(oid), check_index(index), free, read))

    def get_many(
        self,
        client: str,
        pool_id: int,
        keys: Sequence[tuple[OidLike, int]],
        free: bool | None = None,
    ) -> list[bytes | None]:
        """Get a batch; every key is validated before any page is read or freed. For pages that
        may be kept elsewhere, use `get_many_packed` and `take`."""
        pool = self.table.pool(client, pool_id)
        read = self.table.store.read
        return [_here(self._get(pool, o, i, free, read)) for o, i in _checked_keys(keys)]

    def read_many(
        self, client: str, pool_id: int, keys: Sequence[tuple[OidLike, int]]
    ) -> list[bytes | None] | None:
        """The pages of `keys` (None: a miss), freeing nothing; None if one of them is kept
        elsewhere (read those with `get_many_packed`). A get of pages all here with no `Hit`
        nor packed page made per page. Every key is validated before any page is read."""
        table = self.table
        pool = table.pool(client, pool_id)
        read, lookup, size = table.store.read, table.lookup, pool.spec.page_size
        pages: list[bytes | None] = []
        for oid, index in _checked_keys(keys):
            _, slot = lookup(pool, oid, index)
            if slot is None:
                pages.append(None)
            elif slot & REMOTE:
                return None
            else:
                pages.append(read(slot, size))
        return pages

    def get_many_packed(
        self, client: str, pool_id: int, keys: Sequence[tuple[OidLike, int]]
    ) -> list[Hit | PageAway | None]:
        """Read a batch, frees nothing: each page packed as stored (a `Hit`), what the table's
        `Elsewhere` answers for a page kept elsewhere (for RAMster: a `RemoteRef`, to fetch and
        pass to `ramster.remote.shipping.localify`), or None. A get that frees
        (`frees_on_get`) then calls `take`. Every key is validated before any page is read."""
        table = self.table
        pool = table.pool(client, pool_id)
        store, lookup = table.store, table.lookup
        found: list[Hit | PageAway | None] = []
        for oid, index in _checked_keys(keys):
            obj, slot = lookup(pool, oid, index)
            if obj is None or slot is None:
                found.append(None)
            elif slot & REMOTE:
                found.append(table.elsewhere.away(obj, index, slot))
            else:
                page = store.read_packed(slot, pool.spec.page_size)
                found.append(Hit(page, obj.obj_id, index, store.version(slot)))
        return found

    def frees_on_get(self, client: str, pool_id: int, free: bool | None) -> bool:
        """Whether a get of the pool frees what it finds: `free`, or the pool's rule if None."""
        return _frees(self.table.pool(client, pool_id), free)

    def take(self, hits: Sequence[Hit]) -> list[bool]:
        """End a get that frees, once its answer is on its way: free each hit's page (a page
        kept elsewhere: its handle, and its copies there). False for a hit whose key no longer
        holds that version (flushed, put again, or taken by another get meanwhile): its answer
        is a miss."""
        table = self.table
        taken = []
        for hit in hits:
            obj, slot = table.at(hit.obj_id, hit.index)
            if obj is None or slot is None or table.slot_version(slot) != hit.version:
                taken.append(False)
                continue
            obj.pop(hit.index)
            table.release(obj, hit.index, slot)
            taken.append(True)
        return taken

    def flush_page(self, client: str, pool_id: int, oid: OidLike, index: int) -> bool:
        """Remove one page; False if there was none."""
        pool = self.table.pool(client, pool_id)
        return self.table.flush_pool_page(pool, as_oid(oid), check_index(index))

    def flush_many(
        self, client: str, pool_id: int, keys: Sequence[tuple[OidLike, int]]
    ) -> list[bool]:
        """Flush a batch of pages; every key is validated before any page is flushed."""
        pool = self.table.pool(client, pool_id)
        flush = self.table.flush_pool_page
        return [flush(pool, oid, index) for oid, index in _checked_keys(keys)]

    def flush_object(self, client: str, pool_id: int, oid: OidLike) -> bool:
        """Remove every page of an object; False if the object had none."""
        pool = self.table.pool(client, pool_id)
        return self.table.flush_pool_object(pool, as_oid(oid))

    def oids(self, client: str, pool_id: int) -> list[Oid]:
        """The oids of the pool's objects (those holding pages)."""
        return list(self.table.pool(client, pool_id).objects)

    def flush_objects(self, client: str, pool_id: int, oids: Sequence[OidLike]) -> list[bool]:
        """Flush a batch of objects; every oid is validated before any object is flushed."""
        pool = self.table.pool(client, pool_id)
        checked = [as_oid(oid, f"oids[{i}]") for i, oid in enumerate(oids)]
        return [self.table.flush_pool_object(pool, oid) for oid in checked]

    def page_version(self, client: str, pool_id: int, oid: OidLike, index: int) -> int | None:
        """The version of the page at the key, or None if absent (for compare-and-swap)."""
        obj = self.table.pool(client, pool_id).objects.get(as_oid(oid))
        check_index(index)  # also when the object is absent: a bad index is never a miss
        slot = obj.slot(index) if obj is not None else None
        if slot is None:
            return None
        return self.table.slot_version(slot)

    def counters(self) -> dict[str, int]:
        return self.table.counters()

    # -- internals ---------------------------------------------------------------------------

    def _get(
        self, pool: Pool, oid: Oid, index: int, free: bool | None, read: Callable[[int, int], T]
    ) -> T | PageAway | None:
        obj = pool.objects.get(oid)
        slot = obj.slot(index) if obj is not None else None
        if obj is None or slot is None:
            return None
        if slot & REMOTE:
            return self.table.elsewhere.away(obj, index, slot)
        data = read(slot, pool.spec.page_size)
        if _frees(pool, free):
            obj.pop(index)
            self.table.release(obj, index, slot)
        return data


def _frees(pool: Pool, free: bool | None) -> bool:
    """The one rule of which gets free: the caller's `free`, else the pool's (private ephemeral
    pools are exclusive caches)."""
    return pool.frees_on_get if free is None else free


def _here(page: bytes | PageAway | None) -> bytes | None:
    if page is not None and type(page) is not bytes:
        raise FailedPrecondition(
            f"the page is kept elsewhere ({page!r}): read it with get_many_packed"
        )
    return page


def _checked_keys(keys: Sequence[tuple[OidLike, int]]) -> list[tuple[Oid, int]]:
    return [_checked_key(oid, index, "keys", i) for i, (oid, index) in enumerate(keys)]


def _checked_key(oid: OidLike, index: int, field: str, i: int) -> tuple[Oid, int]:
    """The key `oid`, `index` (entry `i` of `field`) as kept, checked. The common cases, an
    int or three words in range, are checked inline: field names are only built for a
    refusal (by `as_oid`, `check_index`)."""
    if type(oid) is int and 0 <= oid <= U64_MAX:
        return _checked_index((oid, 0, 0), index, field, i)
    if type(oid) is tuple and len(oid) == 3:
        w0, w1, w2 = oid
        if (
            type(w0) is int
            and type(w1) is int
            and type(w2) is int
            and 0 <= w0 <= U64_MAX
            and 0 <= w1 <= U64_MAX
            and 0 <= w2 <= U64_MAX
            and oid != INVALID_OID
        ):
            return _checked_index(oid, index, field, i)
    return _checked_index(as_oid(oid, f"{field}[{i}].oid"), index, field, i)


def _checked_index(oid: Oid, index: int, field: str, i: int) -> tuple[Oid, int]:
    if not (type(index) is int and 0 <= index <= U32_MAX):
        check_index(index, f"{field}[{i}].index")
    return oid, index


def _check_length(data: PageData, page_size: int, field: str) -> None:
    length = data.page_size if isinstance(data, PackedPage) else len(data)
    check_page_length(length, page_size, field)
