"""One export's bytes over the node's store: 4096-byte blocks as the pages of one persistent pool.

Block `b` (bytes ``b*4096 .. (b+1)*4096``) is page ``b % 512`` of object ``(0, 0, b // 512)``
(`key_of`), put and got through the node's `TieredTmem` in process (no gRPC hop).

Durability is a disk's with a volatile write cache (NBD's model: the handshake advertises
SEND_FLUSH and SEND_FUA). A write is acknowledged once every page of it is held on this node,
in the store (`TieredTmem.put_first`) or in the spill; the second copies of the pages the store
took (`persistent_copies` 2) are made on a peer after that, in the background
(`ramster.nbd.write_back`: at most `WRITE_BACK_BYTES` of writes at once per volume, a write past
that waits; the copies of the writes acknowledged while a peer call is out go in the next one).
NBD_CMD_FLUSH, and a WRITE or WRITE_ZEROES with FUA, returns only once every write acknowledged
before it holds its copies (`copies_made`, also awaited when the node stops). While the node
runs, a read returns the newest write: it is read here. A crash of this node before a FLUSH can
lose what a disk's power loss can lose from its cache, the writes acknowledged since whose
copies were not made (after a restart such a block reads as it was before). Nothing a FLUSH
covered is lost, and no copy is mixed up: a copy carries the version of the page it copies, a
holder keeps the newest version of a key, and a peer's copy of a page rewritten or trimmed
while it was on its way is flushed (`ramster.remote.copies.settle`). A page whose copy no peer
took goes to the spill (one copy on this node's disk, as a put refused NO_REPLICA does); where
the spill cannot take it, it stays in the store with its one copy (at risk: the repair loop
copies it once a peer can take it) and the next FLUSH fails EIO, saying how many pages (each
failure is reported to one FLUSH, as fsync reports a lost write-back).

- READ is a get that frees nothing (the kernel reuses clean swap slots without rewriting them);
  a page the store does not hold is read from the spill, else reads as zeros.
- WRITE puts whole pages as they are; a page written in part is read, changed and put again
  (read-modify-write), one such change at a time per page. Writes the protocol leaves unordered
  (overlapping requests in flight together) may interleave page by page.
- TRIM flushes the pages wholly inside its range (the partial pages at its edges stay: TRIM is
  advisory) and frees their spill slots; a TRIM of the whole export flushes the object at once.
- WRITE_ZEROES with NO_HOLE stores same-filled zero pages (one byte each, `ramster.page`);
  without it, it punches holes as TRIM does (the protocol allows it: a hole reads as zeros, and
  unlike a stored page it can be refused by nobody); partial edge pages are zeroed in place.
- A page the store refuses (poor compression, a full node) goes to the spill
  (`ramster.nbd.spill`); without a spill, or with the spill full, the write fails ENOSPC and the
  node log says why. A write is never acknowledged unless every page of it is held here.
- When the zcache backend is loaded anew (param zcache off, then on), its pools start empty, and
  so did the export's (zcache off is refused while persistent pages are stored): the volume
  makes its pool again before its next operation, as the frontends register again. Once its
  export is deleted (`close`), every operation fails EIO: a client still connected must never
  reach a later export's pages.

Not here: the registry of exports and who owns them (`ramster.nbd.exports`), the protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace

from ramster.backend import Backend
from ramster.errors import RamsterError
from ramster.nbd.protocol import Errno, RequestRefused
from ramster.nbd.spill import PAGE, Spill
from ramster.nbd.write_back import WriteBack
from ramster.page import LZ4_CODEC, Codec, PackedPage, unpack_page
from ramster.remote.handles import Shipment
from ramster.tiered import Copying, TieredTmem
from ramster.tmem import Oid, PoolSpec, PutOutcome, Rejected, RejectReason
from ramster.tmem.table import PageData

log = logging.getLogger("ramster.nbd")

OBJECT_SHIFT = 9
"""An export's pool holds its blocks 512 (2 MiB, the kernel's swap cluster) to an object: in
one object of 50,000 pages, a lookup took 0.9 us and a key put or flushed moved 200 KB of its
index; a TRIM of a swap cluster flushes its object whole."""
OBJECT_PAGES = 1 << OBJECT_SHIFT
ZERO_PAGE = bytes(PAGE)
PACKED_ZERO = PackedPage(b"\x00", same_filled=True, page_size=PAGE)
SPEC = PoolSpec(persistent=True, page_size=PAGE)
"""The pool of every export, with the codec it asks for."""
TRIM_BATCH = 8192
"""Pages flushed per step of a TRIM: a long one yields to other requests between steps."""
STORE_BATCH = 32
"""Pages a WRITE puts at once: between batches the requests that came meanwhile go first (the
put of a 512 KiB swap-out WRITE takes about 1.7 ms in process, 13 us a page, which a swap-in
READ waited for)."""


@dataclass(frozen=True, slots=True)
class Place:
    """Where an export's pages are: the node's client name and pool id (in backend
    `generation`), and the uid its spilled pages are kept under."""

    client: str
    pool_id: int
    generation: int
    uid: int


class Volume:
    """The bytes of an export of `size` bytes of `client`, over `backend` (through `tiered`)
    and `spill`; `counters` are the registry's, shared by its volumes."""

    def __init__(
        self,
        size: int,
        client: str,
        uid: int,
        backend: Backend,
        tiered: TieredTmem,
        spill: Spill | None,
        counters: dict[str, int],
        codec: Codec = LZ4_CODEC,
    ) -> None:
        self._size = size
        self._spec = replace(SPEC, codec=codec)
        self._backend = backend
        self._tiered = tiered
        self._spill = spill
        self._counters = counters
        pool_id, _ = tiered.new_pool(client, self._spec)
        self._place = Place(client, pool_id, backend.generation, uid)
        self._closed = False
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}
        self._write_back: WriteBack[Place] = WriteBack(counters, self._spill_copy)

    @property
    def size(self) -> int:
        return self._size

    @property
    def place(self) -> Place:
        """Where the pages are now: the pool is made again in a backend loaded anew."""
        if self._closed:
            raise RequestRefused(Errno.EIO, f"export {self._place.client} was deleted")
        place = self._place
        generation = self._backend.generation
        if generation != place.generation:
            pool_id, _ = self._tiered.new_pool(place.client, self._spec)
            place = self._place = replace(place, pool_id=pool_id, generation=generation)
        return place

    def close(self) -> None:
        """The export is deleted: every later operation fails."""
        self._closed = True

    async def read(self, offset: int, length: int) -> bytes:
        first = offset // PAGE
        pages = await self._pages(range(first, (offset + length - 1) // PAGE + 1))
        start = offset - first * PAGE
        return b"".join(pages)[start : start + length]

    async def write(self, offset: int, data: bytes) -> None:
        if not offset % PAGE and not len(data) % PAGE:  # whole blocks: a swap device's writes
            first = offset // PAGE
            await self._store(
                [(first + n, data[n * PAGE : (n + 1) * PAGE]) for n in range(len(data) // PAGE)]
            )
            return
        whole: list[tuple[int, PageData]] = []
        for index, lo, hi in _spans(offset, len(data)):
            chunk = data[lo - offset : hi - offset]
            if hi - lo == PAGE:
                whole.append((index, chunk))
            else:
                await self._change(index, lo - index * PAGE, chunk)
        if whole:
            await self._store(whole)

    async def trim(self, offset: int, length: int) -> None:
        if offset == 0 and length == self._size:
            place = self.place
            oids = self._tiered.oids(place.client, place.pool_id)
            self._tiered.flush_objects(place.client, place.pool_id, oids)
            if self._spill is not None:
                self._spill.drop_export(place.uid)
            return
        first, end = -(-offset // PAGE), (offset + length) // PAGE
        for start in range(first, end, TRIM_BATCH):
            self._flush(range(start, min(start + TRIM_BATCH, end)))
            await asyncio.sleep(0)

    async def write_zeroes(self, offset: int, length: int, no_hole: bool) -> None:
        whole: list[int] = []
        for index, lo, hi in _spans(offset, length):
            if hi - lo == PAGE:
                whole.append(index)
            else:
                await self._change(index, lo - index * PAGE, bytes(hi - lo))
        for start in range(0, len(whole), TRIM_BATCH):
            batch = whole[start : start + TRIM_BATCH]
            if no_hole:
                await self._store([(index, PACKED_ZERO) for index in batch])
            else:
                self._flush(batch)
                await asyncio.sleep(0)

    async def flush(self) -> None:
        """Return once every write acknowledged so far holds its copies and the spill's pages
        are durable in its file; EIO if some page was left with one copy since the last
        FLUSH."""
        await self.copies_made()
        if self._spill is not None:
            await self._spill.sync()
        pages = self._write_back.take_one_copy()
        if pages:
            raise RequestRefused(
                Errno.EIO,
                f"{pages} pages written have one copy: no peer took their other copy and "
                + ("the node has no spill" if self._spill is None else "the spill is full")
                + " (the repair loop copies them once a peer can take them)",
            )

    async def copies_made(self) -> None:
        """Return once the copies of every write acknowledged so far are made (or refused)."""
        await self._write_back.copies_made()

    async def _pages(self, indexes: Sequence[int]) -> list[bytes]:
        place = self.place
        keys = [key_of(index) for index in indexes]
        found = self._tiered.read_here(place.client, place.pool_id, keys)  # lz4 pages all here
        if found is None:
            found = await self._read(place, keys)
        pages = []
        for index, page in zip(indexes, found, strict=True):
            if page is None:
                page = self._spill.load(place.uid, index) if self._spill else None
            pages.append(page if page is not None else ZERO_PAGE)
        return pages

    async def _read(self, place: Place, keys: list[tuple[Oid, int]]) -> list[bytes | None]:
        """The pages of `keys` here or on peers, unpacked (None: a miss)."""
        got = await self._tiered.get(place.client, place.pool_id, keys, False)
        hits = self._tiered.deliver(got, lambda: True)
        found = [hit.page for hit in hits if hit is not None]
        unpacked = iter(self._tiered.unpacked(found, self._spec, got.pool_uid))
        return [next(unpacked) if hit is not None else None for hit in hits]

    async def _change(self, index: int, start: int, chunk: bytes) -> None:
        """Read-modify-write of page `index`: `chunk` at byte `start` of it."""
        async with self._page_lock(index):
            (old,) = await self._pages([index])
            await self._store([(index, old[:start] + chunk + old[start + len(chunk) :])])

    async def _store(self, pages: list[tuple[int, PageData]]) -> None:
        """Put `pages` here, `STORE_BATCH` at a time, their copies made in the background
        (`ramster.nbd.write_back`); those the store refuses go to the spill, or the write
        fails."""
        cost = await self._write_back.admit(len(pages))
        copying: Copying | None = None
        place = self._place
        try:
            place = self.place
            for start in range(0, len(pages), STORE_BATCH):
                if start:
                    await asyncio.sleep(0)  # requests that came meanwhile go first
                batch = pages[start : start + STORE_BATCH]
                keys = [(*key_of(index), data) for index, data in batch]
                outcomes, stored = self._tiered.put_first(place.client, place.pool_id, keys)
                copying = stored if copying is None else copying.joined(stored)
                self._spill_refused(place.uid, batch, outcomes)
        finally:
            self._write_back.queue(place, copying, cost)

    def _spill_refused(
        self, uid: int, pages: list[tuple[int, PageData]], outcomes: list[PutOutcome]
    ) -> None:
        """The pages the store refused go to the spill (or the write fails); those it took
        leave it."""
        refused: list[tuple[int, PageData, RejectReason]] = []
        taken: list[int] = []
        for (index, data), outcome in zip(pages, outcomes, strict=True):
            if isinstance(outcome, Rejected):
                refused.append((index, data, outcome.reason))
            else:
                taken.append(index)
        if self._spill is not None:
            self._spill.drop(uid, taken)
        if refused:
            self._counters["nbd_store_refused"] += len(refused)
            self._spill_or_fail(uid, refused)

    def _spill_copy(self, place: Place, shipment: Shipment) -> bool:
        """Move a page whose copy no peer took from the store to the spill; False if the spill
        cannot take it (it stays in the store)."""
        if self._closed or self._spill is None:
            return False
        block = block_of(shipment.oid, shipment.index)
        try:
            (page,) = self._tiered.unpacked([shipment.page], self._spec, shipment.pool_uid)
        except RamsterError as error:  # its dictionary is gone: the store's copy is all there is
            log.warning("NBD: block %d cannot go to the spill: %s", block, error.message)
            return False
        try:
            if page is None or not self._spill.store(place.uid, block, page):
                return False
        except OSError as error:
            log.warning("NBD: the spill %s failed: %s", self._spill.path, error.strerror)
            return False
        self._tiered.flush(place.client, place.pool_id, [(shipment.oid, shipment.index)])
        return True

    def _spill_or_fail(self, uid: int, refused: list[tuple[int, PageData, RejectReason]]) -> None:
        index, _, reason = refused[0]
        why = f"the store refused {len(refused)} pages (page {index}: {reason.value})"
        if self._spill is None:
            raise RequestRefused(Errno.ENOSPC, f"{why} and the node has no spill (--nbd-spill)")
        for index, data, _ in refused:
            page = unpack_page(data) if isinstance(data, PackedPage) else data
            try:
                spilled = self._spill.store(uid, index, page)
            except OSError as error:
                raise RequestRefused(
                    Errno.EIO, f"{why}; the spill {self._spill.path} failed: {error.strerror}"
                ) from None
            if not spilled:
                raise RequestRefused(
                    Errno.ENOSPC,
                    f"{why} and the spill {self._spill.path} is full "
                    f"({self._spill.capacity} pages)",
                )

    def _flush(self, indexes: Sequence[int]) -> None:
        """Flush blocks `indexes` (no two alike): whole objects at once where they cover one
        (a peer's copies of their pages go up to the versions flushed: `RemoteFlush`)."""
        place = self.place
        by_object: dict[int, list[int]] = {}
        for index in indexes:
            by_object.setdefault(index >> OBJECT_SHIFT, []).append(index)
        whole = [(0, 0, n) for n, blocks in by_object.items() if len(blocks) == OBJECT_PAGES]
        if whole:
            self._tiered.flush_objects(place.client, place.pool_id, whole)
        if len(whole) < len(by_object):
            keys = [
                key_of(block)
                for blocks in by_object.values()
                if len(blocks) < OBJECT_PAGES
                for block in blocks
            ]
            self._tiered.flush(place.client, place.pool_id, keys)
        if self._spill is not None:
            self._spill.drop(place.uid, indexes)

    @contextlib.asynccontextmanager
    async def _page_lock(self, index: int) -> AsyncIterator[None]:
        """One read-modify-write of page `index` at a time; the lock lives while it is used."""
        lock, users = self._locks.get(index, (asyncio.Lock(), 0))
        self._locks[index] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[index]
            if users == 1:
                del self._locks[index]
            else:
                self._locks[index] = (lock, users - 1)


def key_of(block: int) -> tuple[Oid, int]:
    """The key of an export's block in its pool."""
    return (0, 0, block >> OBJECT_SHIFT), block & (OBJECT_PAGES - 1)


def block_of(oid: Oid, index: int) -> int:
    """The block of an export's pool key (`key_of` undone)."""
    return oid[2] << OBJECT_SHIFT | index


def _spans(offset: int, length: int) -> list[tuple[int, int, int]]:
    """(page index, first byte, end byte) of each page the range touches."""
    end = offset + length
    return [
        (index, max(offset, index * PAGE), min(end, (index + 1) * PAGE))
        for index in range(offset // PAGE, (end - 1) // PAGE + 1)
    ]
