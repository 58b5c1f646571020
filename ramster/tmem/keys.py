"""Page addresses and pool attributes: what a (pool, oid, index) may be, checked once.

Covers the value types of the tmem data model (reference §A1.1): object ids of three 64-bit words,
32-bit page indices, pool specifications and the host's limits. Not the pools themselves
(`ramster.tmem.pool`) nor the operations on them (`ramster.tmem.host`), nor page sizes and
lengths (`ramster.page`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from ramster.errors import InvalidArgument
from ramster.page import DEFAULT_PAGE_SIZE, LZ4_CODEC, Codec, check_page_size

U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1

Oid = tuple[int, int, int]
"""An object id: three unsigned 64-bit words, as the kernel's ``struct tmem_oid``."""
OidLike = int | tuple[int, ...]
"""An oid as callers may give it: one int, or up to three words (checked by `as_oid`)."""

INVALID_OID: Oid = (U64_MAX, U64_MAX, U64_MAX)
"""All words all-ones: the kernel's "invalid oid" sentinel, refused as a key."""


@dataclass(frozen=True, slots=True)
class PageVersion:
    """One version of one page of a node: its pool's uid, its key and the version a put gave
    it. What a copy on another node is known by, and the base of every value that carries a
    page across nodes (`ramster.remote.handles.Shipment`, `RemoteRef`, `PageCopies`)."""

    pool_uid: int
    oid: Oid
    index: int
    version: int


def as_oid(oid: OidLike, field: str = "oid") -> Oid:
    """Return `oid` as three words; an int is the first word with the other two zero."""
    if type(oid) is int and 0 <= oid <= U64_MAX:  # the hot path: a plain int in range
        return (oid, 0, 0)
    if isinstance(oid, int) and not isinstance(oid, bool):
        words: tuple[int, ...] = (oid, 0, 0)
    elif isinstance(oid, tuple) and len(oid) == 3:
        words = oid
    else:
        raise InvalidArgument.field(field, oid, "an int or a tuple of three ints")
    for word in words:
        if not isinstance(word, int) or isinstance(word, bool) or not 0 <= word <= U64_MAX:
            raise InvalidArgument.field(field, oid, "words in 0..2**64-1")
    if words == INVALID_OID:
        raise InvalidArgument.field(field, oid, "not the reserved all-ones oid")
    return (words[0], words[1], words[2])


def check_index(index: int, field: str = "index") -> int:
    """Return `index` if it is a page index (0..2**32-1)."""
    if type(index) is int and 0 <= index <= U32_MAX:
        return index
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= U32_MAX:
        raise InvalidArgument.field(field, index, "an int in 0..2**32-1")
    return index


@dataclass(frozen=True, slots=True)
class PoolSpec:
    """What a pool is, fixed at creation.

    persistent: pages stay until flushed (frontswap) instead of being evictable (cleancache).
    shared_uuid: None for a private pool; a UUID names a shared pool, the same for every client.
    page_size: bytes per page, a power of two in 512..65536 (default 4096).
    codec: how the node packs the pool's pages (`ramster.page.Codec`, default lz4).
    """

    persistent: bool = False
    shared_uuid: uuid.UUID | None = None
    page_size: int = DEFAULT_PAGE_SIZE
    codec: Codec = LZ4_CODEC

    def __post_init__(self) -> None:
        check_page_size(self.page_size)
        if self.shared_uuid is not None and not isinstance(self.shared_uuid, uuid.UUID):
            raise InvalidArgument.field("shared_uuid", self.shared_uuid, "a UUID or None")

    @property
    def shared(self) -> bool:
        return self.shared_uuid is not None

    def describe(self) -> str:
        kind = "persistent" if self.persistent else "ephemeral"
        share = f"shared {self.shared_uuid}" if self.shared_uuid else "private"
        codec = "" if self.codec == LZ4_CODEC else f" codec={self.codec}"
        return f"{kind} {share} page_size={self.page_size}{codec}"


@dataclass(frozen=True, slots=True)
class TmemLimits:
    """Bounds on what one node's tmem host keeps, each answered with a named error.

    max_clients: distinct application clients, default 4096 (the origins a node holds pages for
        are bounded by the next two limits and by its budget, which their pools are charged to).
    max_pools_per_client: pools one client may hold at once, default 16 (the kernel's
        MAX_POOLS_PER_CLIENT); on a holder, also the pools one client of an origin owns there.
    max_pools_per_origin: pools a holder keeps for one epoch of one origin, default 4096 (as
        many as an origin of `max_clients` clients with one pool each ships pages of).
    max_epochs_per_origin: epochs of one origin number a holder keeps pages under, default 4
        (its current one, and earlier ones it takes back or forgets when it starts again).
    """

    max_clients: int = 4096
    max_pools_per_client: int = 16
    max_pools_per_origin: int = 4096
    max_epochs_per_origin: int = 4

    def __post_init__(self) -> None:
        for name in (
            "max_clients",
            "max_pools_per_client",
            "max_pools_per_origin",
            "max_epochs_per_origin",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InvalidArgument.field(name, value, "an int >= 1")


OWNER_SEPARATOR = "/"
"""Between the scope and the label of a client name the node makes (`owner_name`)."""


EXPORT_PREFIX = "nbd-export:"
"""The client names of the node's NBD exports start with it (`ramster.nbd.exports`): no
application can make one (an application's client name starts with its identity, ``ROLE:NAME/``,
and no role is ``nbd-export``), and their pools stay until the export is deleted: client sessions
must never expire them (skip them as the clients that are peers, `FOREIGN_PREFIX`)."""


def owner_name(scope: str, label: str) -> str:
    """The client name of the client `label` inside `scope` (for the node: the identity of the
    caller, ``role:name``, whose names hold no ``/``). Pools are a client's, as ever; a shared
    pool's UUID names one pool per scope (`owner_scope`), so another scope naming the same UUID
    gets a pool of its own."""
    return f"{scope}{OWNER_SEPARATOR}{label}"


def owner_scope(client: str) -> str:
    """The scope of a client name `owner_name` made ("" for a name without one: clients in
    process, which share one scope)."""
    scope, separator, _ = client.partition(OWNER_SEPARATOR)
    return scope if separator else ""
