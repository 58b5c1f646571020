"""`TieredTmem`: the node's put and get paths over two tiers, this node's store and its peers.

A put stores here and, for a persistent pool, waits until a peer holds the other copy of each
page stored: a page that got none is taken back and refused NO_REPLICA (docs/design.md §6). A
`put_first` returns once its pages are stored here, with their copies to be made later
(`Copying`): a page no peer took then stays here with one copy, at risk, for its caller to deal
with (the NBD volumes' write-back, `ramster.nbd.volume`). Every
put then wakes the shipping loop if the store is past its high watermark. A get reads here and
fetches the pages found on peers; a persistent page no holder answered for fails the whole get
UNAVAILABLE (retriable): it is not gone, so it is no miss. A get that frees takes its pages only
once its answer is built and the caller still waits (`deliver`): the kernel frees on an
exclusive get only once the data is delivered. Pages are counted by pool class under the
frontends' kernel names (cleancache_*, frontswap_*).

Not here: messages and the answer-size limit (`ramster.rpc.tmem_service`), the tmem rules
(`ramster.tmem`), shipping, replication and remote gets themselves (`ramster.remote`), the
pools' zstd dictionaries: training, record, pack advice (`ramster.dictionary_training`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, cast

from ramster.backend import Backend
from ramster.dictionary_training import DictionaryTraining
from ramster.errors import (
    DeadlineExceeded,
    InternalError,
    InvalidArgument,
    Unavailable,
)
from ramster.page import (
    LZ4,
    ZSTD,
    Codec,
    Dictionaries,
    PackedPage,
    Readable,
    UnknownDictionary,
    unpack_page,
)
from ramster.remote.dictionary_book import DictionaryBook
from ramster.remote.fetch import Fetched
from ramster.remote.handles import OriginTmem, RemoteRef, Shipment, Unanswered
from ramster.tmem import Hit, Oid, PoolSpec, PutOutcome, Rejected, RejectReason, Stored
from ramster.tmem.table import PageData


class Remote(Protocol):
    """What the put and get paths ask of the remote layer (`ramster.remote.RemoteLayer`)."""

    def copies_of_puts(
        self,
        tmem: OriginTmem,
        client: str,
        pool_id: int,
        keys: Sequence[tuple[Oid, int]],
        outcomes: Sequence[PutOutcome],
    ) -> list[Shipment]: ...

    async def copy(
        self, tmem: OriginTmem, shipments: list[Shipment], take_back: bool
    ) -> set[tuple[Oid, int]]: ...

    async def fetch(self, refs: Sequence[RemoteRef], keep: bool) -> list[Fetched]: ...

    def note_pressure(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Got:
    """What a get found (`hits`, in the order of its keys), to be answered and then handed to
    `TieredTmem.deliver`; `tmem` is the backend it was found in."""

    hits: list[Hit | None]
    frees: bool
    persistent: bool
    tmem: OriginTmem
    pool_uid: int


@dataclass(frozen=True, slots=True)
class Copying:
    """The other copies of the pages of one `TieredTmem.put_first`, to be made on peers."""

    remote: Remote | None
    tmem: OriginTmem
    shipments: list[Shipment]

    @property
    def pages(self) -> int:
        return len(self.shipments)

    def joined(self, more: Copying) -> Copying:
        """These copies and `more` (of a later put in the same store), made together."""
        assert more.tmem is self.tmem or not more.shipments, "copies of one store"
        return Copying(self.remote, self.tmem, self.shipments + more.shipments)

    async def made(self) -> set[tuple[Oid, int]]:
        """Make them; the keys of the pages no peer took that are still held at the version
        put, with their one copy (at risk: the repair loop copies them later). The caller may
        act on those before its own next await: they are as the return found them."""
        if self.remote is None or not self.shipments:
            return set()
        return await self.remote.copy(self.tmem, self.shipments, take_back=False)


class TieredTmem:
    """Puts and gets of applications on this node's `backend`, whichever zcache generation is
    loaded, with `remote` for the copies on peers (None: a node alone, nothing is on a peer)
    and `book` to record the dictionaries of persistent pools in (None: they get none): the
    pools' dictionaries are `dictionaries`, trained after puts."""

    def __init__(
        self, backend: Backend, remote: Remote | None = None, book: DictionaryBook | None = None
    ) -> None:
        self._backend = backend
        self._remote = remote
        self.dictionaries = DictionaryTraining(backend, book)
        self.counters = dict.fromkeys(
            (
                "cleancache_puts",
                "cleancache_succ_gets",
                "cleancache_failed_gets",
                "cleancache_invalidates",
                "frontswap_succ_stores",
                "frontswap_failed_stores",
                "frontswap_loads",
                "frontswap_failed_loads",
                "frontswap_invalidates",
                "zstd_pages_lost",
            ),
            0,
        )

    def __repr__(self) -> str:
        return f"<TieredTmem {self._backend!r} remote={self._remote!r}>"

    def check_serving(self) -> None:
        """UNAVAILABLE while the node takes its pages back, FAILED_PRECONDITION with zcache off:
        judged before any argument of a call."""
        self._backend.require()

    def pool_spec(self, client: str, pool_id: int, uid: int = 0) -> PoolSpec:
        """The pool's spec; with a `uid`, PoolNotFound unless the id still names that pool."""
        return self._backend.require().pool_spec(client, pool_id, uid)

    @property
    def default_codec(self) -> Codec:
        """The codec of new pools that ask for none: the node's param codec."""
        return self._backend.params.codec

    def new_pool(self, client: str, spec: PoolSpec) -> tuple[int, int]:
        """A new pool of `client` (`Tmem.new_pool`): its id and its uid."""
        tmem = self._backend.require()
        pool_id = tmem.new_pool(client, spec)
        return pool_id, tmem.pool_uid(client, pool_id)

    def destroy_pool(self, client: str, pool_id: int, uid: int = 0) -> int:
        tmem = self._backend.require()
        tmem.pool_spec(client, pool_id, uid)
        destroyed = tmem.destroy_pool(client, pool_id)
        self.dictionaries.erase_retired()
        return destroyed

    async def put(
        self, client: str, pool_id: int, pages: Sequence[tuple[Oid, int, PageData]]
    ) -> list[PutOutcome]:
        """Store `pages` here, each persistent one with its other copy on a peer; the outcome of
        each page."""
        tmem = self._backend.require()
        spec = tmem.pool_spec(client, pool_id)
        outcomes = tmem.put_many(client, pool_id, pages)
        if self._remote is not None and spec.persistent:
            keys = [(oid, index) for oid, index, _ in pages]
            outcomes = await self._replicate(tmem, client, pool_id, keys, outcomes)
        self._after_put(tmem, client, pool_id, spec, outcomes)
        return outcomes

    def put_first(
        self, client: str, pool_id: int, pages: Sequence[tuple[Oid, int, PageData]]
    ) -> tuple[list[PutOutcome], Copying]:
        """Store `pages` of persistent pool `pool_id` here and return at once: the outcome of
        each page, and their other copies, read back now, to be made on peers by awaiting
        `Copying.made` (for a caller that acknowledges writes before their copies and waits
        for them on flush, as a disk's write cache: the NBD volumes)."""
        tmem = self._backend.require()
        spec = tmem.pool_spec(client, pool_id)
        assert spec.persistent, "only persistent pages have copies to make"
        outcomes = tmem.put_many(client, pool_id, pages)
        shipments: list[Shipment] = []
        if self._remote is not None:
            keys = [(oid, index) for oid, index, _ in pages]
            shipments = self._remote.copies_of_puts(tmem, client, pool_id, keys, outcomes)
        self._after_put(tmem, client, pool_id, spec, outcomes)
        return outcomes, Copying(self._remote, tmem, shipments)

    def _after_put(
        self,
        tmem: OriginTmem,
        client: str,
        pool_id: int,
        spec: PoolSpec,
        outcomes: Sequence[PutOutcome],
    ) -> None:
        """What every put does once its pages are stored: the shipping loop's wake-up, a
        dictionary's training, the counters."""
        if self._remote is not None:
            self._remote.note_pressure()
        if spec.codec.name == ZSTD:
            self.dictionaries.train(tmem.pool_uid(client, pool_id), spec.codec.level)
        stored = sum(isinstance(outcome, Stored) for outcome in outcomes)
        if spec.persistent:
            self.counters["frontswap_succ_stores"] += stored
            self.counters["frontswap_failed_stores"] += len(outcomes) - stored
        else:
            self.counters["cleancache_puts"] += len(outcomes)

    async def get(
        self, client: str, pool_id: int, keys: Sequence[tuple[Oid, int]], free: bool | None
    ) -> Got:
        """Read `keys` here or from the peers holding them, freeing nothing yet: `free` (None:
        the pool's rule) says whether `deliver` frees them once the answer is built."""
        tmem = self._backend.require()
        spec = tmem.pool_spec(client, pool_id)
        frees = tmem.frees_on_get(client, pool_id, free)
        found = tmem.get_many_packed(client, pool_id, keys)
        remote = [(n, page) for n, page in enumerate(found) if isinstance(page, RemoteRef)]
        hits = cast(list[Hit | None], found)
        if remote:
            fetched = await self._fetch([ref for _, ref in remote], keep=not frees)
            unanswered: list[tuple[int, Unanswered]] = []
            for (n, _), page in zip(remote, fetched, strict=True):
                if isinstance(page, Unanswered):
                    unanswered.append((n, page))
                else:
                    hits[n] = page
            if unanswered:  # nothing is freed: the whole get is to be tried again
                raise _unavailable(unanswered)
        return Got(hits, frees, spec.persistent, tmem, tmem.pool_uid(client, pool_id))

    def read_here(
        self, client: str, pool_id: int, keys: Sequence[tuple[Oid, int]]
    ) -> list[bytes | None] | None:
        """A get that keeps its pages, of pages of an lz4 pool all held here, unpacked (None:
        a miss); None if one is on a peer, or the pool's pages are zstd (a page may need its
        pool's dictionary): then `get` and `unpacked`. For a reader of bytes (an NBD export):
        no `Hit` nor packed page made per page."""
        tmem = self._backend.require()
        spec = tmem.pool_spec(client, pool_id)
        if spec.codec.name != LZ4:
            return None
        pages = tmem.read_many(client, pool_id, keys)
        if pages is not None:
            self._count_gets(spec.persistent, len(pages), sum(page is not None for page in pages))
        return pages

    def readable(
        self,
        hits: Sequence[Hit | None],
        spec: PoolSpec,
        pool_uid: int,
        dictionaries_ok: bool = False,
    ) -> list[Readable]:
        """The pages of a get as they are answered: packed as stored, but a page packed with a
        dictionary of its pool unpacked here, unless the caller decodes those
        (`dictionaries_ok`: it fetches the dictionary, `DictionaryTraining.dictionary`). A page
        whose dictionary is gone, or that names one its pool never had, is lost, never read
        wrong: counted (`zstd_pages_lost`), a miss of an ephemeral pool, an error of a persistent
        one."""
        pages: list[Readable] = [hit.page if hit is not None else None for hit in hits]
        if not any(hit is not None and hit.page.dictionary for hit in hits):
            return pages
        dictionaries = self._dictionaries_of(pool_uid)
        for n, hit in enumerate(hits):
            if hit is None or not hit.page.dictionary:
                continue
            if dictionaries_ok and hit.page.dictionary in dictionaries:
                continue
            pages[n] = self._unpacked(hit.page, dictionaries, spec)
        return pages

    def unpacked(
        self, pages: Sequence[PackedPage], spec: PoolSpec, pool_uid: int
    ) -> list[bytes | None]:
        """`pages` of pool `pool_uid` unpacked here, for a reader of bytes (an NBD export): a
        page packed with a dictionary of its pool with that; a page whose dictionary is gone
        is lost as `readable` says."""
        dictionaries = (
            self._dictionaries_of(pool_uid) if any(page.dictionary for page in pages) else {}
        )
        return [self._unpacked(page, dictionaries, spec) for page in pages]

    def _dictionaries_of(self, pool_uid: int) -> Dictionaries:
        store = self._backend.store
        return store.dictionaries.of_pool(pool_uid) if store is not None else {}

    def _unpacked(
        self, page: PackedPage, dictionaries: Dictionaries, spec: PoolSpec
    ) -> bytes | None:
        if not page.dictionary:
            return unpack_page(page)
        try:
            return unpack_page(page, dictionaries)
        except (UnknownDictionary, InvalidArgument) as error:
            self.counters["zstd_pages_lost"] += 1
            if spec.persistent:
                raise InternalError(f"a page of the pool is lost: {error.message}") from None
            return None

    def deliver(self, got: Got, caller_waits: Callable[[], bool]) -> list[Hit | None]:
        """The get's answer is built and fits: a get that frees takes its pages now, unless the
        caller is gone (`caller_waits`), which frees nothing. The hits to answer: a page another
        get took meanwhile is a miss here."""
        hits = got.hits
        if got.frees and any(hits):
            if not caller_waits():  # nobody will receive the pages: they stay
                raise DeadlineExceeded("the caller is gone: no page was freed")
            taken = iter(got.tmem.take([hit for hit in hits if hit is not None]))
            hits = [hit if hit is not None and next(taken) else None for hit in hits]
        self._count_gets(got.persistent, len(hits), sum(hit is not None for hit in hits))
        return hits

    def flush(self, client: str, pool_id: int, keys: Sequence[tuple[Oid, int]]) -> list[bool]:
        tmem = self._backend.require()
        persistent = tmem.pool_spec(client, pool_id).persistent
        flushed = tmem.flush_many(client, pool_id, keys)
        name = "frontswap_invalidates" if persistent else "cleancache_invalidates"
        self.counters[name] += sum(flushed)
        return flushed

    def oids(self, client: str, pool_id: int) -> list[Oid]:
        return self._backend.require().oids(client, pool_id)

    def flush_objects(self, client: str, pool_id: int, oids: Sequence[Oid]) -> list[bool]:
        return self._backend.require().flush_objects(client, pool_id, oids)

    async def _replicate(
        self,
        tmem: OriginTmem,
        client: str,
        pool_id: int,
        keys: list[tuple[Oid, int]],
        outcomes: list[PutOutcome],
    ) -> list[PutOutcome]:
        """The outcomes once every stored page has its other copy on a peer: a page that got
        none was taken back and is refused NO_REPLICA (docs/design.md §6)."""
        assert self._remote is not None
        shipments = self._remote.copies_of_puts(tmem, client, pool_id, keys, outcomes)
        failed = await self._remote.copy(tmem, shipments, take_back=True)
        if not failed:
            return outcomes
        refused = Rejected(RejectReason.NO_REPLICA)
        return [
            refused if isinstance(outcome, Stored) and key in failed else outcome
            for key, outcome in zip(keys, outcomes, strict=True)
        ]

    async def _fetch(self, refs: list[RemoteRef], keep: bool) -> list[Fetched]:
        if self._remote is None:  # remote pages without a remote layer: nothing can fetch them
            return [None] * len(refs)
        return await self._remote.fetch(refs, keep)

    def _count_gets(self, persistent: bool, asked: int, hits: int) -> None:
        if persistent:
            self.counters["frontswap_loads"] += hits
            self.counters["frontswap_failed_loads"] += asked - hits
        else:
            self.counters["cleancache_succ_gets"] += hits
            self.counters["cleancache_failed_gets"] += asked - hits


def _unavailable(unanswered: list[tuple[int, Unanswered]]) -> Unavailable:
    """The refusal of a get whose persistent pages no holder answered for: they stay."""
    n, first = unanswered[0]
    nodes = " and ".join(f"node {node}" for node in first.nodes)
    more = f" (and {len(unanswered) - 1} more keys)" if len(unanswered) > 1 else ""
    return Unavailable(
        f"keys[{n}] is a page held by {nodes}, which did not answer in time{more}: it is kept, "
        "try again"
    )
