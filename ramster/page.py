"""The one page vocabulary of client, node and peers: page sizes, codecs, `PackedPage`.

Page sizes are powers of two in 512..65536 (`check_page_size`); a page is exactly its pool's
page size (`check_page_length`). A pool's `Codec` packs its pages once: `lz4` (the lz4 block
format, the fastest) or `zstd` at a level (a zstd frame, denser; with a `PageDictionary`
trained on the pool's own pages, denser still). Whatever the codec, a same-filled page is one
byte: a page whose bytes are all equal (zero pages above all) compresses to a few dozen bytes;
only such small outputs are checked for being same-filled (an lz4 block by one lookup among the
blocks of the 256 same-filled pages), so ordinary pages pay nothing. A
packed page (`PackedPage`) travels unchanged between client, node and peers; only the final
reader unpacks it. `check_packed` vets a packed page that arrived from outside.

A zstd frame names its dictionary in its header (0: none; how a frame made with one names it:
`ramster.page_dictionary`) and carries the checksum of the page it holds, so a frame read with
any other dictionary fails to decode instead of decoding wrong.

Pure: no I/O, no asyncio. Not here: how a page travels in a message (`ramster.wire.messages`),
keys and pools (`ramster.tmem.keys`), where pages are stored (`ramster.zcache`), which
dictionaries a pool has (`ramster.zcache.dictionaries`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

import zstandard
from lz4.block import LZ4BlockError
from lz4.block import compress as _lz4_compress
from lz4.block import decompress as _lz4_decompress

from ramster.errors import DictionaryRetired, InvalidArgument, RamsterError
from ramster.page_dictionary import PageDictionary, trimmed_frame

MIN_PAGE_SIZE = 512
MAX_PAGE_SIZE = 65536
DEFAULT_PAGE_SIZE = 4096

LZ4 = "lz4"
ZSTD = "zstd"
CODEC_NAMES = (LZ4, ZSTD)
MIN_ZSTD_LEVEL = 1
MAX_ZSTD_LEVEL = 19
"""zstd's levels 20..22 ("ultra") need windows far larger than a page: no gain on a page."""
DEFAULT_ZSTD_LEVEL = 1
"""Level 1 with a trained dictionary stores a page in 800 bytes at 145k pages/s on one core;
level 3 in 774 at 122k (issue 16's corpus): the last few percent cost a sixth of the speed."""


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
class Codec:
    """How a pool packs its pages: `lz4` (level 0), or `zstd` at `level` 1..19."""

    name: str = LZ4
    level: int = 0

    def __str__(self) -> str:
        return self.name if self.name == LZ4 else f"{self.name}:{self.level}"


LZ4_CODEC = Codec()


def codec_of(name: str, level: int = 0, field: str = "codec") -> Codec:
    """The codec `name` at `level` (0: the codec's default), or InvalidArgument naming `field`
    (the level as ``<field>_level``)."""
    if name not in CODEC_NAMES:
        raise InvalidArgument.field(field, name, f"{LZ4} or {ZSTD}")
    if name == LZ4:
        if level:
            raise InvalidArgument.field(f"{field}_level", level, "0 for lz4, which has no levels")
        return LZ4_CODEC
    if type(level) is not int or not (level == 0 or MIN_ZSTD_LEVEL <= level <= MAX_ZSTD_LEVEL):
        expected = f"{MIN_ZSTD_LEVEL}..{MAX_ZSTD_LEVEL} for zstd (0: {DEFAULT_ZSTD_LEVEL})"
        raise InvalidArgument.field(f"{field}_level", level, expected)
    return Codec(ZSTD, level or DEFAULT_ZSTD_LEVEL)


def parse_codec(text: str, field: str = "codec") -> Codec:
    """A codec as people write it: ``lz4``, ``zstd`` or ``zstd:LEVEL``."""
    name, colon, level = text.strip().lower().partition(":")
    if colon and not (level.isascii() and level.isdigit() and len(level) <= 2):
        expected = f"lz4, zstd or zstd:LEVEL with LEVEL in {MIN_ZSTD_LEVEL}..{MAX_ZSTD_LEVEL}"
        raise InvalidArgument.field(field, text, expected)
    try:
        return codec_of(name, int(level) if colon else 0, field)
    except InvalidArgument:
        expected = f"lz4, zstd or zstd:LEVEL with LEVEL in {MIN_ZSTD_LEVEL}..{MAX_ZSTD_LEVEL}"
        raise InvalidArgument.field(field, text, expected) from None


def caller_codec(codec: object, field: str = "codec") -> Codec | None:
    """The codec a caller of the library wrote (`parse_codec`); None (the node's default) for
    None."""
    if codec is None:
        return None
    if not isinstance(codec, str):
        raise InvalidArgument.field(field, codec, "a str such as lz4, zstd or zstd:3")
    return parse_codec(codec, field)


class UnknownDictionary(RamsterError):
    """A zstd page names a dictionary its reader does not have (never had, or dropped): the
    page cannot be read, and is lost, never read wrong."""


Dictionaries = dict[int, PageDictionary]
"""A pool's dictionaries by id, as a reader knows them."""

NO_DICTIONARIES: Dictionaries = {}


class PoolDictionaries(dict[int, PageDictionary]):
    """A pool's dictionaries by id, as its node knows them, and (`dropped`) the ids of those it
    had and dropped once a newer one took over: a writer told to pack with one may still."""

    __slots__ = ("dropped",)

    def __init__(self, dictionaries: Dictionaries, dropped: frozenset[int]) -> None:
        super().__init__(dictionaries)
        self.dropped = dropped


class PackedPage(NamedTuple):
    """A page as `pack_page` packs it: an lz4 block or a zstd frame (`codec`; `dictionary`:
    the id of the zstd dictionary it was made with, 0 none), or its one repeated byte.

    Pages travel packed between clients, nodes and peers and are stored as they arrive, so a
    page is compressed once and decompressed only by the final reader. A named tuple: made for
    every page a get or a copy reads, in a third of a frozen dataclass's time.
    """

    payload: bytes
    same_filled: bool
    page_size: int
    codec: str = LZ4
    dictionary: int = 0


Readable = PackedPage | bytes | None
"""A page as a get answers it: packed as stored; its bytes, unpacked by the node (a page packed
with a dictionary its reader does not have); None, a miss."""


SAME_FILL_PROBE = 64
"""Packed output at most this long, plus 1/128 of the page, may be a same-filled page: a run of n
equal bytes costs lz4 about n/255 bytes plus a few (4 KiB: 28 bytes, 64 KiB: 267 bytes), zstd
less."""


def compress_page(page: bytes) -> tuple[bytes, bool]:
    """(payload, same_filled): the lz4 block of `page`, or its one repeated byte."""
    packed: bytes = _lz4_compress(page, store_size=False)
    if len(packed) > SAME_FILL_PROBE + (len(page) >> 7):
        return packed, False  # not hashed: a block of 4 KiB hashes in 1 to 2 us
    fill = _lz4_filled(len(page)).get(packed)
    return (packed, False) if fill is None else (fill, True)


@cache
def _lz4_filled(page_size: int) -> dict[bytes, bytes]:
    """The lz4 block of every same-filled page of `page_size` bytes, to its fill byte. lz4 is
    deterministic, so a page is same-filled exactly when its block is one of these (a block
    decodes to one page only): one lookup instead of a scan of the page (2 to 3 us)."""
    fills = (bytes([byte]) for byte in range(256))
    return {_lz4_compress(fill * page_size, store_size=False): fill for fill in fills}


def _same_filled(page: bytes, packed: bytes) -> tuple[bytes, bool]:
    if len(packed) <= SAME_FILL_PROBE + (len(page) >> 7):
        first = bytes(page[:1])
        if page == first * len(page):
            return first, True
    return packed, False


@cache
def _zstd_compressor(level: int) -> zstandard.ZstdCompressor:
    """The compressor of `level` without a dictionary (a dictionary keeps its own: kept here,
    it would outlive the dictionary), of frames that state the page's size and checksum."""
    return zstandard.ZstdCompressor(
        level=level, write_checksum=True, write_content_size=True, write_dict_id=True
    )


_PLAIN_ZSTD = zstandard.ZstdDecompressor()


def pack_page(
    page: bytes, codec: Codec = LZ4_CODEC, dictionary: PageDictionary | None = None
) -> PackedPage:
    """`page` packed with `codec` (zstd: with `dictionary`, if any)."""
    if codec.name == LZ4:
        payload, same_filled = compress_page(page)
        return PackedPage(payload, same_filled, len(page))
    if dictionary is None:
        frame = trimmed_frame(_zstd_compressor(codec.level).compress(page))
    else:
        frame = dictionary.pack(page, codec.level)
    payload, same_filled = _same_filled(page, frame)
    if same_filled:
        return PackedPage(payload, True, len(page))
    return PackedPage(payload, False, len(page), ZSTD, dictionary.dict_id if dictionary else 0)


def unpack_page(packed: PackedPage, dictionaries: Dictionaries = NO_DICTIONARIES) -> bytes:
    """The page `packed` holds, exactly its page size; `UnknownDictionary` if it needs a
    dictionary not in `dictionaries`, InvalidArgument if it decodes to anything else."""
    if packed.same_filled:
        return packed.payload * packed.page_size
    if packed.codec == LZ4:
        return decompress_page(packed.payload, False, packed.page_size)
    # Checked whole when it came in (`check_packed`); its checksum still guards the bytes.
    try:
        page: bytes = _decompressor(packed, dictionaries).decompress(packed.payload)
    except zstandard.ZstdError:
        page = b""
    if len(page) != packed.page_size:
        raise InvalidArgument(f"zstd page does not decode to one page of {packed.page_size} bytes")
    return page


def decompress_page(payload: bytes, same_filled: bool, page_size: int) -> bytes:
    """The page an lz4 block or a fill byte `payload` encodes, exactly `page_size` bytes."""
    if same_filled:
        return payload * page_size
    page: bytes = _lz4_decompress(payload, uncompressed_size=page_size)
    if len(page) != page_size:
        raise InvalidArgument(f"compressed page decodes to {len(page)} bytes, not {page_size}")
    return page


def zstd_dictionary_id(frame: bytes) -> int:
    """The dictionary a zstd frame names in its header (0: none; also 0 for no frame at all,
    which then fails to decode)."""
    try:
        return int(zstandard.get_frame_parameters(frame).dict_id)
    except zstandard.ZstdError:
        return 0


def _decompressor(packed: PackedPage, dictionaries: Dictionaries) -> zstandard.ZstdDecompressor:
    """The decompressor of `packed`'s dictionary; `UnknownDictionary` if it is not known."""
    if not packed.dictionary:
        return _PLAIN_ZSTD
    dictionary = dictionaries.get(packed.dictionary)
    if dictionary is None:
        raise UnknownDictionary(
            f"zstd page names dictionary {packed.dictionary}, which is not known here"
        )
    return dictionary.decompressor


def _zstd_decoded(packed: PackedPage, dictionaries: Dictionaries) -> bytes | None:
    """The page of a zstd frame, or None unless `packed.payload` is exactly one whole frame that
    states its size and checksum; `UnknownDictionary` for a dictionary not in `dictionaries`."""
    payload = packed.payload
    decompressor = _decompressor(packed, dictionaries)
    try:
        header = zstandard.get_frame_parameters(payload)
        if header.content_size != packed.page_size or not header.has_checksum:
            return None
        # One call, no stream object (which took twice as long): it refuses a frame cut short
        # and any byte after it.
        page: bytes = decompressor.decompress(payload, allow_extra_data=False)
    except zstandard.ZstdError:
        return None
    return page


def check_packed(
    packed: PackedPage, field: str, dictionaries: Dictionaries | None = NO_DICTIONARIES
) -> PackedPage:
    """`packed` if it really decodes to one page; InvalidArgument naming `field` if not (or if it
    names a dictionary not in `dictionaries`). `dictionaries` None: a holder of another node's
    pages, which has none of its dictionaries, checks of a zstd frame made with one only what
    its header says (one page of the size stated, with a checksum), since only a reader with the
    dictionary can decode it."""
    if packed.same_filled:
        if len(packed.payload) != 1:
            raise InvalidArgument(
                f"{field} length {len(packed.payload)} is invalid: a same-filled page is 1 byte",
                field,
            )
        return packed
    if packed.codec == ZSTD:
        return _checked_zstd(packed, field, dictionaries)
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


def _checked_zstd(packed: PackedPage, field: str, dictionaries: Dictionaries | None) -> PackedPage:
    """A zstd page checked as `check_packed` says, with the dictionary its frame names."""
    try:
        header = zstandard.get_frame_parameters(packed.payload)
    except zstandard.ZstdError:
        header = None
    if header is None or not header.has_checksum or not 0 < header.content_size <= MAX_PAGE_SIZE:
        raise InvalidArgument(
            f"{field} is not a zstd frame of a page with its size and checksum "
            f"({len(packed.payload)} bytes received)",
            field,
        )
    if header.content_size != packed.page_size:
        raise InvalidArgument(
            f"{field} length {header.content_size} != pool page_size {packed.page_size}", field
        )
    named = PackedPage(packed.payload, False, packed.page_size, ZSTD, int(header.dict_id))
    if dictionaries is None:
        if named.dictionary:
            return named
        dictionaries = NO_DICTIONARIES
    try:
        page = _zstd_decoded(named, dictionaries)
    except UnknownDictionary:
        if isinstance(dictionaries, PoolDictionaries) and named.dictionary in dictionaries.dropped:
            raise DictionaryRetired(
                f"{field} names zstd dictionary {named.dictionary}, which its pool dropped when "
                "a newer one took over: send the page raw, or packed as the put's answer advises"
            ) from None
        raise InvalidArgument(
            f"{field} names zstd dictionary {named.dictionary}, which its reader does not know",
            field,
        ) from None
    if page is None or len(page) != packed.page_size:
        raise InvalidArgument(
            f"{field} is not one whole zstd frame of a page ({len(packed.payload)} bytes received)",
            field,
        )
    return named


def _decoded_or_none(payload: bytes) -> bytes | None:
    """`payload` decoded into a buffer of the largest page size, or None if it is no block."""
    try:
        page: bytes = _lz4_decompress(payload, uncompressed_size=MAX_PAGE_SIZE)
    except LZ4BlockError:
        return None
    return page
