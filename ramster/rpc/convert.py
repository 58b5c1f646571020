"""The node's requests to core values and its answers back, validating what the core cannot see.

The core checks keys, pools and page lengths; this module checks what only exists on the wire:
the client name, batch sizes, UUID bytes, enum values. Every refusal names the field and value.
Not here: the limits both ends share (`ramster.wire.limits`), the conversions both ends make
(`ramster.wire.messages`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from ramster.api.v1 import tmem_pb2
from ramster.errors import InvalidArgument
from ramster.page import (
    DEFAULT_PAGE_SIZE,
    NO_DICTIONARIES,
    Codec,
    Dictionaries,
    PackedPage,
    Readable,
    check_packed,
    codec_of,
)
from ramster.tmem import Oid, PoolSpec, PutOutcome, Rejected, RejectReason
from ramster.tmem.table import PageData
from ramster.wire.batches import spans
from ramster.wire.limits import MAX_BATCH
from ramster.wire.messages import oid_of, packed_encoding, packed_of

PUT_STATUS_OF_REASON = {
    RejectReason.COMPRESS_POOR: tmem_pb2.PUT_STATUS_COMPRESS_POOR,
    RejectReason.MEAN_COMPRESS_POOR: tmem_pb2.PUT_STATUS_MEAN_COMPRESS_POOR,
    RejectReason.NO_SPACE: tmem_pb2.PUT_STATUS_NO_SPACE,
    RejectReason.NO_REPLICA: tmem_pb2.PUT_STATUS_NO_REPLICA,
    RejectReason.QUOTA: tmem_pb2.PUT_STATUS_QUOTA,
}

FREE_OF_MODE: dict[int, bool | None] = {
    tmem_pb2.GET_MODE_UNSPECIFIED: None,
    tmem_pb2.GET_MODE_FREE: True,
    tmem_pb2.GET_MODE_KEEP: False,
}


def batch_size(field: str, count: int) -> None:
    if count > MAX_BATCH:
        raise InvalidArgument(f"{field} count {count} exceeds the batch limit {MAX_BATCH}", field)


def pool_spec(request: tmem_pb2.NewPoolRequest, default_codec: Codec) -> PoolSpec:
    """The pool a NewPool asks for; `default_codec` (the node's) unless it names one."""
    shared: uuid.UUID | None = None
    if request.shared_uuid:
        if len(request.shared_uuid) != 16:
            raise InvalidArgument(
                f"shared_uuid length {len(request.shared_uuid)} is invalid: expected 0 or 16 bytes"
            )
        shared = uuid.UUID(bytes=request.shared_uuid)
    return PoolSpec(
        persistent=request.persistent,
        shared_uuid=shared,
        page_size=request.page_size or DEFAULT_PAGE_SIZE,
        codec=pool_codec(request.codec, request.codec_level, default_codec),
    )


def pool_codec(name: str, level: int, default: Codec) -> Codec:
    """The codec named `name` at `level` (fields codec, codec_level); `default` if unnamed."""
    if name:
        return codec_of(name, level)
    if level:
        raise InvalidArgument.field(
            "codec_level", level, "0 when codec is empty (the node's default codec)"
        )
    return default


def keys_of(keys: Sequence[tmem_pb2.PageKey]) -> list[tuple[Oid, int]]:
    batch_size("keys", len(keys))
    return [(oid_of(k.oid), k.index) for k in keys]


PUT_ENCODINGS = (
    tmem_pb2.PAGE_ENCODING_UNSPECIFIED,
    tmem_pb2.PAGE_ENCODING_LZ4,
    tmem_pb2.PAGE_ENCODING_SAME_FILLED,
    tmem_pb2.PAGE_ENCODING_ZSTD,
)
"""What a client's page may travel as."""

PACKED_ENCODINGS = PUT_ENCODINGS[1:]
"""The packed encodings: holders keep pages packed, as the origin stored them."""

PEER_ENCODINGS = (*PACKED_ENCODINGS, tmem_pb2.PAGE_ENCODING_SEALED)
"""What a peer's page may travel as: packed, or sealed by its origin (`ramster.trust.seal`)."""


def pages_of(pages: Sequence[tmem_pb2.Page], page_size: int) -> list[tuple[Oid, int, PageData]]:
    """The pages of a put, each checked to be one page of `page_size` bytes."""
    batch_size("pages", len(pages))
    return [
        (
            oid_of(p.oid),
            p.index,
            page_data(p.data, p.encoding, p.length, page_size, f"pages[{i}]"),
        )
        for i, p in enumerate(pages)
    ]


def page_data(
    data: bytes,
    encoding: int,
    length: int,
    page_size: int,
    field: str,
    dictionaries: Dictionaries = NO_DICTIONARIES,
) -> PageData:
    """The page of a client's put if it is exactly one page of `page_size` bytes: a raw page
    is its bytes (the core checks their length against the pool), a packed one as
    `packed_page` checks it (a zstd frame may name one of `dictionaries`)."""
    if encoding != tmem_pb2.PAGE_ENCODING_UNSPECIFIED:
        return packed_page(data, encoding, length, page_size, field, PUT_ENCODINGS, dictionaries)
    _check_stated_length(length, page_size, field)
    return data


def packed_page(
    data: bytes,
    encoding: int,
    length: int,
    page_size: int,
    field: str,
    encodings: Sequence[int] = PACKED_ENCODINGS,
    dictionaries: Dictionaries | None = NO_DICTIONARIES,
) -> PackedPage:
    """A packed page of a put (a client's or a peer's) if it is exactly one page of `page_size`
    bytes; `encodings` are those the caller may send, named in a refusal; `dictionaries` those
    a zstd frame may name (`check_packed`).

    Every encoding states or implies its length: an lz4 block or a zstd frame by what it
    decodes to (a frame states it, and is checked against it first), a same-filled page, one
    fill byte, only by `length`, which it must state. A stated `length` (0: unstated) must be
    `page_size`, and is checked first, so no block is decoded into a buffer the caller chose."""
    if encoding not in PACKED_ENCODINGS:
        names = [tmem_pb2.PageEncoding.Name(e) for e in encodings]
        expected = f"{', '.join(names[:-1])} or {names[-1]}"
        raise InvalidArgument.field(f"{field}.encoding", encoding, expected)
    _check_stated_length(length, page_size, field)
    same_filled = encoding == tmem_pb2.PAGE_ENCODING_SAME_FILLED
    if same_filled and not length:
        raise InvalidArgument(
            f"{field}.length is 0: a same-filled page states its length, "
            f"the pool page_size {page_size}",
            f"{field}.length",
        )
    return check_packed(packed_of(data, encoding, page_size), f"{field}.data", dictionaries)


def _check_stated_length(length: int, page_size: int, field: str) -> None:
    if length and length != page_size:
        raise InvalidArgument(
            f"{field}.length {length} != pool page_size {page_size}", f"{field}.length"
        )


def keys_of_batch(keys: tmem_pb2.KeyBatch) -> list[tuple[Oid, int]]:
    """The keys of a `KeyBatch`, its arrays checked to have one entry per key (the core checks
    the keys themselves)."""
    indexes = keys.indexes
    count = len(indexes)
    batch_size("keys", count)
    check_entries("keys.oid_word0", len(keys.oid_word0), count, per="keys.indexes")
    words0 = keys.oid_word0
    words1 = _optional_words(keys.oid_word1, "keys.oid_word1", count)
    words2 = _optional_words(keys.oid_word2, "keys.oid_word2", count)
    return list(zip(zip(words0, words1, words2, strict=True), indexes, strict=True))


def _optional_words(words: Sequence[int], field: str, count: int) -> Sequence[int]:
    if not words:
        return ZEROS[:count]
    check_entries(field, len(words), count, " or none", per="keys.indexes")
    return words


ZEROS = (0,) * MAX_BATCH
"""An oid word absent from a `KeyBatch`: 0 for every key."""


def pages_of_batch(
    request: tmem_pb2.PutPageBatchRequest,
    count: int,
    page_size: int,
    dictionaries: Dictionaries = NO_DICTIONARIES,
) -> list[PageData]:
    """The `count` pages of a lean put, cut out of `data` by `lengths` (a slice is the page
    stored: no message per page) and each checked by `page_data` as a `Page` is, named
    ``pages[n]`` as in `pages_of`; a zstd frame may name one of the pool's `dictionaries`."""
    encodings, data = request.encodings, request.data
    check_entries("encodings", len(encodings), count)
    stated: Sequence[int] = request.page_lengths
    if stated:
        check_entries("page_lengths", len(stated), count, " or none")
    else:
        stated = ZEROS[:count]
    return [
        page_data(data[start:end], encoding, length, page_size, f"pages[{i}]", dictionaries)
        for i, ((start, end), encoding, length) in enumerate(
            zip(parts(data, request.lengths, count), encodings, stated, strict=True)
        )
    ]


def parts(data: bytes, lengths: Sequence[int], count: int) -> list[tuple[int, int]]:
    """The (start, end) of each of the `count` parts of a lean batch's `data`, cut by `lengths`
    (one per key, adding up to the size of `data`)."""
    check_entries("lengths", len(lengths), count)
    total = sum(lengths)
    if total != len(data):
        raise InvalidArgument(f"lengths add up to {total} bytes, data has {len(data)}", "lengths")
    return spans(lengths)


def check_entries(field: str, entries: int, count: int, other: str = "", per: str = "keys") -> None:
    """Refuse a lean batch's array `field` unless it has one entry per key (`other`: what else
    it may have, e.g. " or none")."""
    if entries != count:
        raise InvalidArgument(
            f"{field} has {entries} entries for {count} {per}: expected one per key{other}", field
        )


def packed_response(pages: Sequence[Readable], page_size: int) -> tmem_pb2.GetPagesResponse:
    """The answer to a get of packed pages: each as stored, or unpacked (`Readable`)."""
    return tmem_pb2.GetPagesResponse(
        found=[page is not None for page in pages],
        data=[_data(page) for page in pages],
        encodings=[_encoding(page) for page in pages],
        page_size=page_size,
    )


def batch_response(pages: Sequence[Readable], page_size: int) -> tmem_pb2.GetPageBatchResponse:
    """The lean answer to a get: the pages found one after another, a miss of length 0."""
    data = [_data(page) for page in pages]
    return tmem_pb2.GetPageBatchResponse(
        data=b"".join(data),
        lengths=[len(part) for part in data],
        encodings=[_encoding(page) for page in pages],
        page_size=page_size,
    )


def _data(page: Readable) -> bytes:
    if page is None:
        return b""
    return page if isinstance(page, bytes) else page.payload


def _encoding(page: Readable) -> tmem_pb2.PageEncoding:
    """A miss and an unpacked page travel as PAGE_ENCODING_UNSPECIFIED (a miss has length 0)."""
    if page is None or isinstance(page, bytes):
        return tmem_pb2.PAGE_ENCODING_UNSPECIFIED
    return packed_encoding(page)


def free_of(mode: int) -> bool | None:
    if mode not in FREE_OF_MODE:
        raise InvalidArgument.field(
            "mode", mode, "GET_MODE_UNSPECIFIED, GET_MODE_FREE or GET_MODE_KEEP"
        )
    return FREE_OF_MODE[mode]


def put_status(outcome: PutOutcome) -> tmem_pb2.PutStatus:
    if isinstance(outcome, Rejected):
        return PUT_STATUS_OF_REASON[outcome.reason]
    return tmem_pb2.PUT_STATUS_STORED
