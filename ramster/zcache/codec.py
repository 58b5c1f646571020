"""Page compression: lz4 block format, compress once, and same-filled pages as one byte.

A page whose bytes are all equal (zero pages above all) compresses to a few dozen bytes with
lz4; only such small outputs are checked for being same-filled, so ordinary pages pay nothing.
The store keeps the payload; peers carry it unchanged; only the final get decompresses.
"""

from __future__ import annotations

from lz4.block import compress as _lz4_compress
from lz4.block import decompress as _lz4_decompress

from ramster.errors import InvalidArgument

SAME_FILL_PROBE = 64
"""lz4 output at most this long may be a same-filled page (4 KiB of one byte is ~20 bytes).

lz4 spends about one byte per 255 bytes of a run, so for pages above 4 KiB the probe is 1/64 of
the page: 64 KiB of one byte packs to 267 bytes, and the probe is then 1024."""


def compress_page(page: bytes) -> tuple[bytes, bool]:
    """(payload, same_filled): the lz4 block of `page`, or its one repeated byte."""
    packed: bytes = _lz4_compress(page, store_size=False)
    if len(packed) <= max(SAME_FILL_PROBE, len(page) >> 6):
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
