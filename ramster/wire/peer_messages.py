"""The Peer service's page messages, as the origin writes its requests and reads the answers,
and as a holder writes its answers: both forms, and the pool records both ends send.

The per-page form (`Peer/PutPages`, `Peer/GetPages`, `Peer/FlushPages`) carries one
`RemotePage` or `RemoteKey` per page; the lean form (`Peer/PutPageBatch`, `Peer/GetPageBatch`,
`Peer/FlushPageBatch`) carries a batch as Tmem's
lean form does (`ramster.wire.batches`): the keys as a `KeyBatch`, every other per-page field
as a packed array, the pages as one bytes field cut by `lengths`. A page carries the same fields
in both and they mean the same. Not here: the holder's checks of the pages it receives
(`ramster.rpc.foreign_pages`), sealing and which form to use (`ramster.rpc.peer_link`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from zlib import crc32

from ramster.api.v1 import peer_pb2, tmem_pb2
from ramster.errors import InternalError, InvalidArgument
from ramster.page import LZ4, PackedPage, check_page_size, codec_of
from ramster.remote.handles import RemoteFlush, RemoteRef, Shipment
from ramster.tmem.keys import Oid, PoolSpec
from ramster.tmem.pool import PoolRecord
from ramster.wire.batches import key_batch, spans
from ramster.wire.limits import MAX_OWNER_NAME, check_client_name
from ramster.wire.messages import oid_message, packed_encoding

Answered = tuple[bytes | memoryview, int, int, int]
"""A page as a holder answered it: (its bytes, encoding, version, checksum)."""


def remote_page(
    shipment: Shipment, data: bytes, encoding: tmem_pb2.PageEncoding
) -> peer_pb2.RemotePage:
    """A page of the per-page form, sent as `data` in `encoding` (`PeerLink._payloads`)."""
    return peer_pb2.RemotePage(
        pool=shipment.pool_uid,
        persistent=shipment.persistent,
        oid=oid_message(shipment.oid),
        index=shipment.index,
        version=shipment.version,
        data=data,
        encoding=encoding,
        page_size=shipment.page.page_size,
        checksum=crc32(data),
    )


def get_request(origin: peer_pb2.Origin, refs: Sequence[RemoteRef]) -> peer_pb2.PeerGetRequest:
    """A get of `refs` in the per-page form."""
    return peer_pb2.PeerGetRequest(
        origin=origin,
        keys=[
            peer_pb2.RemoteKey(pool=r.pool_uid, oid=oid_message(r.oid), index=r.index) for r in refs
        ],
    )


def get_response(answers: Sequence[tuple[PackedPage, int] | None]) -> peer_pb2.PeerGetResponse:
    """A holder's per-page answer to a get: each page found with its version and checksum."""
    raw = tmem_pb2.PAGE_ENCODING_UNSPECIFIED
    return peer_pb2.PeerGetResponse(
        found=[a is not None for a in answers],
        data=[a[0].payload if a is not None else b"" for a in answers],
        encodings=[packed_encoding(a[0]) if a is not None else raw for a in answers],
        versions=[a[1] if a is not None else 0 for a in answers],
        checksums=[crc32(a[0].payload) if a is not None else 0 for a in answers],
    )


def page_answers(response: peer_pb2.PeerGetResponse) -> list[Answered | None]:
    """What a holder answered in the per-page form, None for a miss."""
    return [
        (data, encoding, version, checksum) if found else None
        for found, data, encoding, version, checksum in zip(
            response.found,
            response.data,
            response.encodings,
            response.versions,
            response.checksums,
            strict=True,
        )
    ]


def put_batch_request(
    origin: peer_pb2.Origin,
    holder_epoch: str,
    pools: Sequence[peer_pb2.PoolRecord],
    shipments: Sequence[Shipment],
    payloads: Sequence[tuple[bytes, tmem_pb2.PageEncoding]],
    skip_checksums: bool = False,
) -> peer_pb2.PeerPutBatchRequest:
    """A lean put of `shipments`, each sent as its (bytes, encoding) in `payloads` (packed, or
    sealed by the origin), with the CRC-32 of those bytes; with `skip_checksums`, of an origin
    that seals every page and calls over TLS, without them (the proto says when a holder takes
    that)."""
    data = [payload for payload, _ in payloads]
    return peer_pb2.PeerPutBatchRequest(
        origin=origin,
        holder_epoch=holder_epoch,
        pools=pools,
        keys=key_batch([(s.oid, s.index) for s in shipments]),
        pool_uids=[s.pool_uid for s in shipments],
        persistent=[s.persistent for s in shipments],
        versions=[s.version for s in shipments],
        encodings=[encoding for _, encoding in payloads],
        page_sizes=[s.page.page_size for s in shipments],
        checksums=[] if skip_checksums else [crc32(payload) for payload in data],
        data=b"".join(data),
        lengths=[len(payload) for payload in data],
        skip_checksums=skip_checksums,
    )


def get_batch_request(
    origin: peer_pb2.Origin, refs: Sequence[RemoteRef], skip_checksums: bool = False
) -> peer_pb2.PeerGetBatchRequest:
    """A get of `refs` in the lean form; with `skip_checksums`, of an origin that checks each
    page by its seal's tag (the holder leaves the CRC-32s out)."""
    return peer_pb2.PeerGetBatchRequest(
        origin=origin,
        keys=key_batch([(r.oid, r.index) for r in refs]),
        pool_uids=[r.pool_uid for r in refs],
        skip_checksums=skip_checksums,
    )


def flush_request(
    origin: peer_pb2.Origin, flushes: Sequence[RemoteFlush]
) -> peer_pb2.PeerFlushPagesRequest:
    """The flushes of copies of single pages (each with its oid and index), per page."""
    return peer_pb2.PeerFlushPagesRequest(
        origin=origin,
        keys=[
            peer_pb2.RemoteKey(
                pool=f.pool_uid, oid=oid_message(oid), index=index, version=f.version
            )
            for f, (oid, index) in zip(flushes, map(_page_key, flushes), strict=True)
        ],
    )


def flush_batch_request(
    origin: peer_pb2.Origin, flushes: Sequence[RemoteFlush]
) -> peer_pb2.PeerFlushPageBatchRequest:
    """`flush_request` in the lean form: the keys as a `KeyBatch`, pool uids and versions as
    packed arrays."""
    return peer_pb2.PeerFlushPageBatchRequest(
        origin=origin,
        keys=key_batch(list(map(_page_key, flushes))),
        pool_uids=[f.pool_uid for f in flushes],
        versions=[f.version for f in flushes],
    )


def _page_key(flush: RemoteFlush) -> tuple[Oid, int]:
    assert flush.oid is not None and flush.index is not None, "a page flush names its page"
    return flush.oid, flush.index


def get_batch_response(
    answers: Sequence[tuple[PackedPage, int] | None], checksums: bool = True
) -> peer_pb2.PeerGetBatchResponse:
    """A holder's lean answer: the pages found one after another, a miss of length 0; every
    checksum 0 without `checksums` (an origin that checks its pages by their seals' tags has
    no use for them, and a CRC-32 costs a holder 0.4 to 1 µs a page of 1.4 KB)."""
    raw = tmem_pb2.PAGE_ENCODING_UNSPECIFIED
    return peer_pb2.PeerGetBatchResponse(
        data=b"".join(a[0].payload for a in answers if a is not None),
        lengths=[len(a[0].payload) if a is not None else 0 for a in answers],
        encodings=[packed_encoding(a[0]) if a is not None else raw for a in answers],
        versions=[a[1] if a is not None else 0 for a in answers],
        checksums=[crc32(a[0].payload) if a is not None else 0 for a in answers]
        if checksums
        else [0] * len(answers),
    )


def batch_answers(
    response: peer_pb2.PeerGetBatchResponse, keys: int, node: int, views: bool = False
) -> list[Answered | None]:
    """What peer `node` answered for `keys` keys, None for a miss; with `views`, each page's
    bytes a memoryview of the answer's (no copy, for a reader that makes its own: a seal's
    opening). An answer whose arrays do not have one entry per key, or whose lengths do not add
    up to its data, raises InternalError: the peer could not be read (its pages may still be
    there)."""
    lengths = response.lengths
    data: bytes | memoryview = memoryview(response.data) if views else response.data
    arrays = (lengths, response.encodings, response.versions, response.checksums)
    if any(len(array) != keys for array in arrays) or sum(lengths) != len(data):
        counts = ", ".join(str(len(array)) for array in arrays)
        raise InternalError(
            f"node {node} answered {keys} keys malformed: {counts} lengths, encodings, versions "
            f"and checksums; lengths adding up to {sum(lengths)} bytes, data of {len(data)}"
        )
    return [
        (data[start:end], encoding, version, checksum) if end > start else None
        for (start, end), encoding, version, checksum in zip(
            spans(lengths), response.encodings, response.versions, response.checksums, strict=True
        )
    ]


def pool_record_message(record: PoolRecord) -> peer_pb2.PoolRecord:
    spec = record.spec
    return peer_pb2.PoolRecord(
        pool=record.uid,
        client=record.client,
        pool_id=record.pool_id,
        persistent=spec.persistent,
        page_size=spec.page_size,
        shared_uuid=spec.shared_uuid.bytes if spec.shared_uuid is not None else b"",
        codec=spec.codec.name,
        codec_level=spec.codec.level,
    )


def pool_record_of(message: peer_pb2.PoolRecord, field: str = "pools") -> PoolRecord:
    """The record a peer sent (`field` names it in refusals); one that does not describe a
    valid pool of a valid client raises InvalidArgument."""
    if message.shared_uuid and len(message.shared_uuid) != 16:
        raise InvalidArgument.field(
            f"{field}.shared_uuid", message.shared_uuid.hex(), "0 or 16 bytes"
        )
    shared = uuid.UUID(bytes=message.shared_uuid) if message.shared_uuid else None
    # A record of a node from before codecs names none: its pools were lz4.
    codec = codec_of(message.codec or LZ4, message.codec_level, f"{field}.codec")
    spec = PoolSpec(
        message.persistent,
        shared,
        check_page_size(message.page_size, f"{field}.page_size"),
        codec,
    )
    owner = check_client_name(message.client, f"{field}.client", MAX_OWNER_NAME)
    return PoolRecord(message.pool, owner, message.pool_id, spec)
