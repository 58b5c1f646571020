"""The one page vocabulary of client, node and peers: page sizes, `PackedPage`, and the codec.

Page sizes are powers of two in 512..65536 (`check_page_size`); a page is exactly its pool's
page size (`check_page_length`). Compression is the lz4 block format, compress once, and
same-filled pages as one byte: a page whose bytes are all equal (zero pages above all)
compresses to a few dozen bytes with lz4; only such small outputs are checked for being
same-filled, so ordinary pages pay nothing. A packed page (`PackedPage`) travels unchanged
between client, node and peers; only the final reader unpacks it. `check_packed` vets a packed
page that arrived from outside.

Pure: no I/O, no asyncio. Not here: how a page travels in a message (`ramster.wire.messages`),
keys and pools (`ramster.tmem.keys`), where pages are stored (`ramster.zcache`).
"""

from __future__ import annotations

from dataclasses import dataclass

from lz4.block import LZ4BlockError
from lz4.block import compress as _lz4_compress
from lz4.block import decompress as _lz4_decompress

from ramster.errors import InvalidArgument

MIN_PAGE_SIZE = 512
MAX_PAGE_SIZE = 65536
DEFAULT_PAGE_SIZE = 4096


def check_page_size(page_size: int, field: str = "page_size") -> int:
    """Return `page_size` if it is a power of two in 512..65536."""
    if (
        not isinstance(page_size, int)
        or isinstance(page_size, bool)
        or not MIN_PAGE_SIZE <= page_size <= MAX_PAGE_SIZE
        or page_size & (page_size - 1)
    ):
        raise InvalidArgument.field(field, page_size, "a power of two in 512..65536")
    return page_size


def check_page_length(length: int, page_size: int, field: str = "data") -> None:
    """Refuse a page of `length` bytes for a pool of `page_size`-byte pages, naming both."""
    if length != page_size:
        raise InvalidArgument(f"{field} length {length} != pool page_size {page_size}", field)


@dataclass(frozen=True, slots=True)
class PackedPage:
    """A page as `pack_page` packs it: an lz4 block, or its one repeated byte.

    Pages travel packed between clients, nodes and peers and are stored as they arrive, so a
    page is compressed once and decompressed only by the final reader.
    """

    payload: bytes
    same_filled: bool
    page_size: int


SAME_FILL_PROBE = 64
"""lz4 output at most this long, plus 1/128 of the page, may be a same-filled page: a run of n
equal bytes costs lz4 about n/255 bytes plus a few (4 KiB: 28 bytes, 64 KiB: 267 bytes)."""


def compress_page(page: bytes) -> tuple[bytes, bool]:
    """(payload, same_filled): the lz4 block of `page`, or its one repeated byte."""
    packed: bytes = _lz4_compress(page, store_size=False)
    if len(packed) <= SAME_FILL_PROBE + (len(page) >> 7):
        first = bytes(page[:1])
        if page.count(first) == len(page):
            return first, True
    return packed, False


def decompress_page(payload: bytes, same_filled: bool, page_size: int) -> bytes:
    """The page `payload` encodes, exactly `page_size` bytes."""
    if same_filled:
        return payload * page_size
    page: bytes = _lz4_decompress(payload, uncompressed_size=page_size)
    if len(page) != page_size:
        raise InvalidArgument(f"compressed page decodes to {len(page)} bytes, not {page_size}")
    return page


def pack_page(page: bytes) -> PackedPage:
    payload, same_filled = compress_page(page)
    return PackedPage(payload, same_filled, len(page))


def unpack_page(packed: PackedPage) -> bytes:
    return decompress_page(packed.payload, packed.same_filled, packed.page_size)


def check_packed(packed: PackedPage, field: str) -> PackedPage:
    """`packed` if it really decodes to one page; InvalidArgument naming `field` if not."""
    if packed.same_filled:
        if len(packed.payload) != 1:
            raise InvalidArgument(
                f"{field} length {len(packed.payload)} is invalid: a same-filled page is 1 byte",
                field,
            )
        return packed
    try:
        page = _lz4_decompress(packed.payload, uncompressed_size=packed.page_size)
    except LZ4BlockError:
        page = _decoded_or_none(packed.payload)
        if page is None:
            raise InvalidArgument(
                f"{field} is not an lz4 block of a page ({len(packed.payload)} bytes received)",
                field,
            ) from None
    if len(page) != packed.page_size:
        # The same words as for a raw page of the wrong length: the caller's page was short.
        raise InvalidArgument(
            f"{field} length {len(page)} != pool page_size {packed.page_size}", field
        )
    return packed


def _decoded_or_none(payload: bytes) -> bytes | None:
    """`payload` decoded into a buffer of the largest page size, or None if it is no block."""
    try:
        page: bytes = _lz4_decompress(payload, uncompressed_size=MAX_PAGE_SIZE)
    except LZ4BlockError:
        return None
    return page
