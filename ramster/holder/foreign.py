"""Pages this node holds for other nodes ("foreign" pages, reference §A5.7).

A holder keeps each origin's pages under a client of their own, named by the origin's number and
epoch, in pools autocreated under the origin's pool uid, within this node's budget: foreign
ephemeral pages may be evicted, foreign persistent pages may not, and none is shipped on. The
pools and their records are charged to the budget too (`ramster.tmem.table.PageTable.place_pool`),
and capped per epoch, per client of the origin and in epochs per origin (`TmemLimits`). Pages
arrive packed and leave as stored. The tree is changed through the page table's public methods only.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from ramster.errors import FailedPrecondition, ResourceExhausted, shown
from ramster.page import PackedPage
from ramster.tmem.elsewhere import REMOTE, Elsewhere
from ramster.tmem.keys import Oid, PoolSpec, TmemLimits
from ramster.tmem.pool import Pool, PoolRecord
from ramster.tmem.table import FOREIGN_PREFIX, PageTable, PutOutcome, Stored

DEFAULT_LIMITS = TmemLimits()

ForeignKey = tuple[int, Oid, int]
"""(origin pool uid, oid, index)."""


def origin_client(node: int, epoch: str) -> str:
    return f"{FOREIGN_PREFIX}{node}:{epoch}"


@dataclass(frozen=True, slots=True)
class ForeignPages:
    """The pages of one call of an origin as columns, entry `n` of each being page `n`: a lean
    `PutPageBatch` is read into these with no object per page (a frozen object per page cost as
    much as its page's checksum)."""

    pool_uids: Sequence[int]
    persistent: Sequence[bool]
    keys: Sequence[tuple[Oid, int]]
    versions: Sequence[int]
    pages: Sequence[PackedPage]

    def __len__(self) -> int:
        return len(self.pages)


def put_foreign(
    table: PageTable[Elsewhere],
    origin: str,
    pages: ForeignPages,
    owners: Sequence[PoolRecord] = (),
    limits: TmemLimits = DEFAULT_LIMITS,
) -> list[PutOutcome]:
    """Store pages for `origin`, each under its origin version, noting who owns their pools
    (a record that does not describe the held pool's pages is ignored). Every page's pool is
    found or made first, and every record checked, so a pool that does not fit (the budget or
    `limits`) refuses the batch before anything is stored."""
    # A batch's pages share one pool or a few: each is looked up (or made) once, in page order,
    # so the first page whose pool does not fit is the one refused.
    found: dict[tuple[int, bool, int], Pool] = {}
    pools = []
    for uid, persistent, page in zip(pages.pool_uids, pages.persistent, pages.pages, strict=True):
        kind = (uid, persistent, page.page_size)
        pool = found.get(kind)
        if pool is None:
            pool = found[kind] = _pool(table, origin, uid, persistent, page.page_size, limits)
        pools.append(pool)
    held = table.client_pools(origin)
    for record in owners:
        pool = held.get(record.uid)
        if pool is None or pool.owner == (record.client, record.pool_id):
            continue
        kept, told = pool.spec, record.spec
        if kept.persistent == told.persistent and kept.page_size == told.page_size:
            _check_owned(held, record.client, origin, limits.max_pools_per_client)
            pool.owner = (record.client, record.pool_id)
            pool.spec = record.spec
    return [
        _put_unless_newer(table, pool, oid, index, version, page)
        for pool, (oid, index), version, page in zip(
            pools, pages.keys, pages.versions, pages.pages, strict=True
        )
    ]


def _put_unless_newer(
    table: PageTable[Elsewhere], pool: Pool, oid: Oid, index: int, version: int, page: PackedPage
) -> PutOutcome:
    """Store `page` unless a newer version of its key is held already: two shipments of one key
    may arrive out of order, and the older must not replace the newer (the origin then flushes
    the older version, which must not take the newer copy with it)."""
    obj = pool.objects.get(oid)
    slot = obj.slot(index) if obj is not None else None
    if slot is not None and not slot & REMOTE:
        held = table.slot_version(slot)
        if held > version:
            return Stored(held)
    return table.put_pool_page(pool, oid, index, page, version=version)


def get_foreign(
    table: PageTable[Elsewhere], origin: str, keys: Sequence[ForeignKey]
) -> list[tuple[PackedPage, int] | None]:
    """Each page with its origin version, or None. The copies stay: the origin flushes one once
    its own get has answered."""
    pools = table.client_pools(origin)
    answers: list[tuple[PackedPage, int] | None] = []
    for pool_uid, oid, index in keys:
        pool = pools.get(pool_uid)
        answers.append(table.stored_page(pool, oid, index) if pool is not None else None)
    return answers


def flush_foreign_pages(
    table: PageTable[Elsewhere], origin: str, keys: Sequence[tuple[int, Oid, int, int]]
) -> list[bool]:
    """Flush (pool uid, oid, index, version) copies; version 0 flushes any version, another
    only the copy of that version (a newer copy of the key stays)."""
    pools = table.client_pools(origin)
    flushed = []
    for pool_uid, oid, index, version in keys:
        pool = pools.get(pool_uid)
        if pool is not None and version:
            obj = pool.objects.get(oid)
            slot = obj.slot(index) if obj is not None else None
            if slot is None or table.slot_version(slot) != version:
                flushed.append(False)
                continue
        flushed.append(pool is not None and table.flush_pool_page(pool, oid, index))
    return flushed


def flush_foreign_objects(
    table: PageTable[Elsewhere], origin: str, objects: Sequence[tuple[int, Oid, int]]
) -> list[bool]:
    """Flush the copies of (pool uid, oid, version) objects up to that version (0: every copy):
    a newer copy of a page of the object, put since its origin flushed it, stays."""
    pools = table.client_pools(origin)
    return [
        pool_uid in pools and table.flush_pool_object(pools[pool_uid], oid, version)
        for pool_uid, oid, version in objects
    ]


def destroy_foreign_pools(
    table: PageTable[Elsewhere], origin: str, pool_uids: Sequence[int]
) -> list[bool]:
    done = []
    for uid in pool_uids:
        pool = table.remove_pool(origin, uid)
        done.append(pool is not None)
        if pool is not None:
            table.drop_pool(pool)
    return done


def origins(table: PageTable[Elsewhere]) -> list[str]:
    return table.client_names(FOREIGN_PREFIX)


def foreign_pages(table: PageTable[Elsewhere], of: Collection[str] | None = None) -> int:
    """Pages this node holds for other nodes (only for the origins `of`, if given)."""
    return sum(
        pool.pages
        for origin in origins(table)
        if of is None or origin in of
        for pool in table.client_pools(origin).values()
    )


def _check_owned(held: Mapping[int, Pool], client: str, origin: str, limit: int) -> None:
    """Refuse one more pool of `client` if it owns `limit` pools of `origin` here already: an
    origin keeps its clients to that cap, so a record past it was made up."""
    owned = sum(1 for pool in held.values() if pool.owner is not None and pool.owner[0] == client)
    if owned >= limit:
        raise ResourceExhausted(
            f"client {shown(client)} of {origin} owns {owned} pools here: "
            f"max_pools_per_client is {limit}"
        )


def _pool(
    table: PageTable[Elsewhere],
    origin: str,
    uid: int,
    persistent: bool,
    page_size: int,
    limits: TmemLimits,
) -> Pool:
    held = table.client_pools(origin)
    pool = held.get(uid)
    if pool is None:
        if not held:
            _check_epochs(table, origin, limits.max_epochs_per_origin)
        if len(held) >= limits.max_pools_per_origin:
            raise ResourceExhausted(
                f"{origin} holds {len(held)} pools here: max_pools_per_origin is "
                f"{limits.max_pools_per_origin}"
            )
        pool = Pool(PoolSpec(persistent, None, page_size), uid, foreign=True)
        table.place_pool(origin, uid, pool)
    elif pool.spec.persistent != persistent or pool.spec.page_size != page_size:
        raise FailedPrecondition(
            f"origin pool {uid} of {origin} is {pool.spec.describe()}, not "
            f"{PoolSpec(persistent, None, page_size).describe()}"
        )
    return pool


def _check_epochs(table: PageTable[Elsewhere], origin: str, limit: int) -> None:
    """Refuse a new epoch of an origin number that has pages here under `limit` epochs: a node
    that starts again takes back or forgets its earlier epochs, so more were made up."""
    number = origin.removeprefix(FOREIGN_PREFIX).partition(":")[0]
    held = table.client_names(f"{FOREIGN_PREFIX}{number}:")
    if len(held) >= limit:
        raise ResourceExhausted(
            f"node {number} has pages here under {len(held)} epochs: max_epochs_per_origin is "
            f"{limit} (a node that starts again takes back or forgets its earlier ones)"
        )
