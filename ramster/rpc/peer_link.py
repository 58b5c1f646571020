"""`PeerLink`: the gRPC client of one peer, the r2net connection of the kernel (§A5.4).

One channel per peer; every call carries the origin (this node's number and epoch) and a
deadline, and a failure is raised once as the `RamsterError` of its status. Pages go out packed
as stored and come back packed, sealed under this node's page key if it has one (`seal`: the
holder can neither read them nor hand back another page in their place; over TLS a sealed put
carries no CRC-32s, to a peer whose Hello says it takes that); a Hello comes back as the peer's
`MemberInfo`. Pages travel in the lean form (`Peer/PutPageBatch`, `Peer/GetPageBatch`, and their
flushes in `Peer/FlushPageBatch`) to a peer whose Hello announced it serves them, in the per-page
form otherwise (a peer of an earlier release); the messages of both are
`ramster.wire.peer_messages`.
Not here: what to send when (`ramster.remote`), the serving end (`ramster.rpc.peer_service`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from zlib import crc32

import grpc

from nodemanager.model import MemberInfo
from ramster.api.v1 import peer_pb2, tmem_pb2
from ramster.holder.epochs import HeldKey
from ramster.page import PackedPage
from ramster.remote.handles import RemoteFlush, RemoteRef, Shipment
from ramster.tmem.pool import PoolRecord
from ramster.trust.seal import OriginSeal
from ramster.wire.calls import M, Message, stream_call, unary_call
from ramster.wire.limits import MAX_BATCH, MESSAGE_SIZE_OPTIONS, OWN_CONNECTIONS
from ramster.wire.messages import oid_message, packed_encoding, packed_of
from ramster.wire.peer_messages import (
    Answered,
    batch_answers,
    flush_batch_request,
    flush_request,
    get_batch_request,
    get_request,
    page_answers,
    pool_record_message,
    pool_record_of,
    put_batch_request,
    remote_page,
)
from ramster.wire.tls import TLS

PROTOCOL_VERSION = 1

log = logging.getLogger("ramster.remote")


class PeerLink:
    """Calls to peer `number` at `address` on behalf of origin (`me`, `epoch`), with this node's
    certificate if it has `tls` (the peer's must then be of the same CA, for that address), its
    pages sealed with `seal` if given."""

    def __init__(
        self,
        number: int,
        address: str,
        me: int,
        epoch: str,
        timeout: float,
        *,
        cluster: str,
        name: str,
        tls: TLS | None = None,
        seal: OriginSeal | None = None,
    ) -> None:
        self.number = number
        self._seal = seal
        self.address = address
        self._origin = peer_pb2.Origin(node_number=me, epoch=epoch)
        self._hello = peer_pb2.HelloRequest(
            cluster=cluster,
            protocol_version=PROTOCOL_VERSION,
            node_name=name,
            node_number=me,
            epoch=epoch,
        )
        self._timeout = timeout
        self.corrupt_pages = 0
        self._holder_epoch = ""
        self._page_batches: bool | None = None
        """Whether the peer serves the lean page calls, as its last Hello said (None: not asked
        since the link was made or the peer's epoch changed)."""
        self._flush_batches = False
        """Whether it serves the lean page flush too, as the same Hello said."""
        self._unchecked_puts = False
        """Whether lean puts go without checksums: this node seals its pages (each checked by
        its tag when it comes back), its link is TLS (whose records guard the pages on the way)
        and the peer's last Hello said it takes such puts."""
        self._asking = asyncio.Lock()  # one Hello for every call that finds the form unknown
        options = (
            *MESSAGE_SIZE_OPTIONS,
            *OWN_CONNECTIONS,
            ("grpc.max_reconnect_backoff_ms", 1000),
        )
        self._tls = tls is not None
        self._channel = (
            grpc.aio.insecure_channel(address, options)
            if tls is None
            else grpc.aio.secure_channel(address, tls.channel_credentials(), options)
        )

    def __repr__(self) -> str:
        return f"<PeerLink node {self.number} at {self.address}>"

    async def close(self) -> None:
        await self._channel.close(None)

    @property
    def holder_epoch(self) -> str:
        """The peer's epoch as this node's view has it; a peer of another epoch refuses puts."""
        return self._holder_epoch

    @holder_epoch.setter
    def holder_epoch(self, epoch: str) -> None:
        if epoch != self._holder_epoch:
            self._page_batches = None  # a restarted peer may run another release: ask again
        self._holder_epoch = epoch

    async def hello(self, timeout: float | None = None) -> MemberInfo:
        """Who the peer is, as it tells this node (this node's name and cluster as the link was
        made for); a peer that gives no address is where this link reaches it."""
        hello = await self._call("Hello", self._hello, peer_pb2.HelloResponse, timeout)
        self._page_batches = hello.page_batches
        self._flush_batches = hello.flush_batches
        self._unchecked_puts = self._seal is not None and self._tls and hello.sealed_puts_unchecked
        return MemberInfo(
            number=hello.node_number,
            name=hello.node_name,
            address=hello.address or self.address,
            epoch=hello.epoch,
            capacity_bytes=hello.capacity_bytes,
            free_bytes=hello.free_bytes,
            zcache=hello.zcache,
            ramster=hello.ramster,
            draining=hello.draining,
        )

    async def _lean(self, timeout: float | None = None) -> bool:
        """Whether to use the lean page calls: if the peer's Hello announced them (asked once
        per epoch of the peer: calls at once wait for the one Hello)."""
        if self._page_batches is None:
            async with self._asking:
                if self._page_batches is None:
                    await self.hello(timeout)
        return bool(self._page_batches)

    async def put(
        self, shipments: Sequence[Shipment], owners: Sequence[PoolRecord] = ()
    ) -> list[bool]:
        """Store pages on the peer, telling it who owns their pools; True for each it took."""
        pools = [pool_record_message(record) for record in owners]
        payloads = self._payloads(shipments)
        response: peer_pb2.PeerPutResponse | peer_pb2.PeerPutBatchResponse
        if await self._lean():
            batch = put_batch_request(
                self._origin,
                self.holder_epoch,
                pools,
                shipments,
                payloads,
                skip_checksums=self._unchecked_puts,
            )
            response = await self._call("PutPageBatch", batch, peer_pb2.PeerPutBatchResponse)
        else:
            request = peer_pb2.PeerPutRequest(
                origin=self._origin,
                holder_epoch=self.holder_epoch,
                pools=pools,
                pages=[remote_page(s, *p) for s, p in zip(shipments, payloads, strict=True)],
            )
            response = await self._call("PutPages", request, peer_pb2.PeerPutResponse)
        return [status == tmem_pb2.PUT_STATUS_STORED for status in response.results]

    async def get(
        self, refs: Sequence[RemoteRef], timeout: float | None = None
    ) -> list[tuple[PackedPage, int] | None]:
        """Each page with the version the peer holds, or None; the peer keeps its copies (an
        origin frees a copy by flushing it, once its own get has answered). A page whose bytes
        do not match the checksum that came with them is a lost copy (None), counted in
        `corrupt_pages`: it is never handed on. `timeout` shortens the link's deadline (of each
        request: refs whose pages could outgrow one answer are asked in several)."""
        answers: list[tuple[PackedPage, int] | None] = []
        for chunk in answer_chunks(refs):
            answers += await self._get(chunk, timeout)
        return answers

    async def _get(
        self, refs: Sequence[RemoteRef], timeout: float | None
    ) -> list[tuple[PackedPage, int] | None]:
        rows: list[Answered | None]
        if await self._lean(timeout):
            batch = get_batch_request(self._origin, refs, skip_checksums=self._seal is not None)
            answer = await self._call("GetPageBatch", batch, peer_pb2.PeerGetBatchResponse, timeout)
            rows = batch_answers(answer, len(refs), self.number, views=self._seal is not None)
        else:
            request = get_request(self._origin, refs)
            response = await self._call("GetPages", request, peer_pb2.PeerGetResponse, timeout)
            rows = page_answers(response)
        answers: list[tuple[PackedPage, int] | None] = []
        for ref, row, page in zip(refs, rows, self._opened(refs, rows), strict=True):
            if page is not None and row is not None:
                answers.append((page, row[2]))
                continue
            if row is not None:
                self.corrupt_pages += 1
                log.warning("node %d sent a corrupt copy of %s/%d", self.number, ref.oid, ref.index)
            answers.append(None)
        return answers

    def _payloads(self, shipments: Sequence[Shipment]) -> list[tuple[bytes, tmem_pb2.PageEncoding]]:
        """Each page's bytes as they leave this node, and their encoding: packed, and sealed if
        this node has a page key."""
        if self._seal is not None:
            sealed = tmem_pb2.PAGE_ENCODING_SEALED
            return [(data, sealed) for data in self._seal.seal_all((s, s.page) for s in shipments)]
        return [(s.page.payload, packed_encoding(s.page)) for s in shipments]

    def _opened(
        self, refs: Sequence[RemoteRef], rows: Sequence[Answered | None]
    ) -> list[PackedPage | None]:
        """The pages a holder answered for `refs` (`rows`: None for a miss), opened if this node
        seals its pages; None for a miss and for a page that does not open or match its
        checksum: another page, version or key, or damage. A page this node sealed is checked
        by its tag, which a holder cannot forge as it can a CRC-32: its checksum is left
        unread (the lean get asks the holder to leave it out; one of an earlier release, or
        the per-page form, sends it anyway), and so is its encoding (a holder answers a sealed
        page as the lz4 block it stored it as)."""
        if self._seal is not None:
            return self._seal.open_all(
                None if row is None else (r.pool_uid, r.oid, r.index, row[2], r.page_size, row[0])
                for r, row in zip(refs, rows, strict=True)
            )
        return [
            None
            if row is None or crc32(row[0]) != row[3]
            else packed_of(bytes(row[0]), row[1], r.page_size)
            for r, row in zip(refs, rows, strict=True)
        ]

    async def flush(self, flushes: Sequence[RemoteFlush]) -> int:
        """Send page, object and pool flushes (in that order); return how many found a copy."""
        pages = [f for f in flushes if f.oid is not None and f.index is not None]
        objects = [f for f in flushes if f.oid is not None and f.index is None]
        pools = [f.pool_uid for f in flushes if f.oid is None]
        found = 0
        lean = bool(pages) and await self._lean() and self._flush_batches
        for start in range(0, len(pages), MAX_BATCH):
            keys = pages[start : start + MAX_BATCH]
            if lean:
                batch = flush_batch_request(self._origin, keys)
                found += sum((await self._call("FlushPageBatch", batch, _FLUSHED)).flushed)
            else:
                request = flush_request(self._origin, keys)
                found += sum((await self._call("FlushPages", request, _FLUSHED)).flushed)
        for start in range(0, len(objects), MAX_BATCH):
            request_objects = peer_pb2.PeerFlushObjectsRequest(
                origin=self._origin,
                objects=[
                    peer_pb2.RemoteObject(
                        pool=f.pool_uid, oid=oid_message(f.oid), version=f.version
                    )
                    for f in objects[start : start + MAX_BATCH]
                    if f.oid is not None
                ],
            )
            found += sum((await self._call("FlushObjects", request_objects, _FLUSHED)).flushed)
        for start in range(0, len(pools), MAX_BATCH):
            chunk = pools[start : start + MAX_BATCH]
            request_pools = peer_pb2.PeerDestroyPoolsRequest(origin=self._origin, pools=chunk)
            found += sum((await self._call("DestroyPools", request_pools, _FLUSHED)).flushed)
        return found

    async def recover(
        self, keep: Sequence[str], timeout: float
    ) -> tuple[list[str], list[PoolRecord], list[HeldKey]]:
        """What the peer holds for this node's earlier epochs: with `keep` empty, only which
        epochs (nothing changes); else it adopts the persistent pages of the epochs `keep`
        (oldest first) under this epoch, drops the rest, and lists the pools and pages
        adopted."""
        request = peer_pb2.RecoverRequest(origin=self._origin, keep=keep)
        chunks = await stream_call(
            self._channel, "Peer/Recover", request, peer_pb2.RecoverChunk, timeout
        )
        epochs: list[str] = []
        owners: list[PoolRecord] = []
        keys: list[HeldKey] = []
        for chunk in chunks:
            epochs.extend(chunk.epochs)
            owners.extend(pool_record_of(message) for message in chunk.pools)
            keys.extend(
                (k.pool, (k.oid.word0, k.oid.word1, k.oid.word2), k.index, k.version)
                for k in chunk.keys
            )
        return epochs, owners, keys

    async def forget(self) -> bool:
        """Have the peer drop every page it holds for this node's earlier epochs; True if it
        held any."""
        request = peer_pb2.ForgetRequest(origin=self._origin)
        return any((await self._call("Forget", request, _FLUSHED)).flushed)

    async def _call(
        self,
        method: str,
        request: Message,
        response_type: type[M],
        timeout: float | None = None,
    ) -> M:
        deadline = self._timeout if timeout is None else min(timeout, self._timeout)
        return await unary_call(self._channel, f"Peer/{method}", request, response_type, deadline)


_FLUSHED = peer_pb2.PeerFlushResponse


ANSWER_PAGE_BYTES = 4 * 2**20
"""Page bytes one get may ask for: the answer, at most that plus its framing, fits a message."""


def answer_chunks(refs: Sequence[RemoteRef]) -> list[Sequence[RemoteRef]]:
    """`refs` in consecutive runs whose answer fits one message: at most `MAX_BATCH` pages and
    `ANSWER_PAGE_BYTES` of page size (a packed page is never larger than its page size)."""
    chunks: list[Sequence[RemoteRef]] = []
    start = size = 0
    for end, ref in enumerate(refs):
        if end > start and (end - start == MAX_BATCH or size + ref.page_size > ANSWER_PAGE_BYTES):
            chunks.append(refs[start:end])
            start, size = end, 0
        size += ref.page_size
    if start < len(refs):
        chunks.append(refs[start:])
    return chunks
