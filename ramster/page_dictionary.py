"""`PageDictionary`: a trained zstd dictionary, as a pool's pages are packed and read with it.

A dictionary is stored and sent in zstd's own format: a header (its id, entropy tables, repeat
offsets) and the content (fragments of the pages it was trained on). Readers decode with all of
it. Pages are packed with the content alone (a raw-content dictionary), because at zstd's fast
levels (strategies below lazy: levels 1..5 for a page beside a 32 KiB dictionary) zstd reuses a
full dictionary's entropy tables on a page without weighing them against the page's own: on the
bench corpus (`ramster.workload.corpus`, 2,000 training pages, 400 held out) zstd level 1 packs
a page in 907 bytes alone, 973 with the full dictionary, 875 with its content alone.

A frame made with a raw-content dictionary names none, so `pack` writes the dictionary's id into
its header (RFC 8878, Dictionary_ID): every packed page names its dictionary, and a reader
decoding it with the full dictionary gets the same page, since the full dictionary's content
ends at the same byte (offsets into it agree), a raw-content frame uses no table it did not
send, and the repeat offsets a full dictionary starts with are zstd's defaults, those of a
raw-content one (a dictionary whose are not is packed with whole, as frames before were). Each
frame carries its page's checksum: read with any other dictionary, it fails to decode.

Pure: no I/O, no asyncio. Not here: packing a page (`ramster.page`), which dictionaries a pool
has (`ramster.zcache.dictionaries`).
"""

from __future__ import annotations

import struct

import zstandard

# zstd's own reader of a dictionary's header (ZDICT_getDictHeaderSize), which zstandard's C
# backend does not expose; its cffi backend, in the same wheel, exports it untyped.
from zstandard.backend_cffi import lib as _zstd_lib  # type: ignore[attr-defined]

from ramster.errors import InvalidArgument

_DEFAULT_REPEAT_OFFSETS = struct.pack("<3I", 1, 4, 8)
"""The repeat offsets a frame starts with when its dictionary states none (zstd's)."""
_SINGLE_SEGMENT = 0x20
_DICTIONARY_ID_SIZES = ((1 << 8, 1), (1 << 16, 2), (1 << 32, 4))
"""(ids below, bytes of the id in a frame header), as zstd writes it: the fewest that fit."""


class PageDictionary:
    """A zstd dictionary, immutable, named by its id (1..2**32-1) in every frame made with it.

    Made of fragments of the pages it was trained on: as secret as they are."""

    __slots__ = (
        "_compressors",
        "_decompressor",
        "_names",
        "_packs_with",
        "dict_id",
        "size",
        "zstd",
    )

    def __init__(self, data: bytes) -> None:
        # zstd keeps a copy of its own: `data` itself is not kept. A node's dictionary comes
        # from a training thread, in that thread's malloc arena: kept for the dictionary's
        # life, that block stopped the arena from shrinking (292 KiB more of it stayed
        # resident in the bench's store, `tests.bench.density_child`).
        self.size = len(data)
        self.zstd = zstandard.ZstdCompressionDict(data)
        self.dict_id: int = self.zstd.dict_id()
        if not self.dict_id:
            raise InvalidArgument(f"dictionary of {len(data)} bytes is invalid: it has no id")
        content = _content_start(data)
        self._packs_with = (
            self.zstd
            if content is None
            else zstandard.ZstdCompressionDict(
                data[content:], dict_type=zstandard.DICT_TYPE_RAWCONTENT
            )
        )
        size_code, size = next(
            (code, size)
            for code, (below, size) in enumerate(_DICTIONARY_ID_SIZES, 1)
            if self.dict_id < below
        )
        self._names = (size_code, self.dict_id.to_bytes(size, "little"))
        """How a frame's header names this dictionary: its Dictionary_ID_flag and field."""
        self._compressors: dict[int, zstandard.ZstdCompressor] = {}
        self._decompressor = zstandard.ZstdDecompressor(dict_data=self.zstd)

    def __repr__(self) -> str:
        return f"<PageDictionary {self.dict_id} of {self.size} bytes>"

    @property
    def data(self) -> bytes:
        """The dictionary in zstd's format, as it is recorded and sent (a copy)."""
        data: bytes = self.zstd.as_bytes()
        return data

    def pack(self, page: bytes, level: int) -> bytes:
        """The zstd frame of `page` at `level`, made with this dictionary and naming it, in a
        block of its own size (`ramster.page.pack_page` keeps it as it is)."""
        compressor = self._compressors.get(level)
        if compressor is None:
            compressor = self._compressors[level] = zstandard.ZstdCompressor(
                level=level,
                dict_data=self._packs_with,
                write_checksum=True,
                write_content_size=True,
                write_dict_id=True,
            )
        frame: bytes = compressor.compress(page)
        if self._packs_with is self.zstd:
            return trimmed_frame(frame)
        return _named(frame, *self._names)

    @property
    def decompressor(self) -> zstandard.ZstdDecompressor:
        return self._decompressor


def _content_start(data: bytes) -> int | None:
    """Where the content of zstd dictionary `data` starts (after its header), or None if its
    frames cannot be made with the content alone: its repeat offsets are not zstd's defaults
    (a trained one's are), or zstd cannot read its header."""
    size: int = _zstd_lib.ZDICT_getDictHeaderSize(data, len(data))
    if _zstd_lib.ZDICT_isError(size) or size < 12 or size >= len(data):
        return None
    return size if data[size - 12 : size] == _DEFAULT_REPEAT_OFFSETS else None


def trimmed_frame(frame: bytes) -> bytes:
    """`frame` in a block of its own size. zstandard allocates a frame the size of zstd's bound
    (more than the page) and shrinks it in place: kept, each frame would pin a page's worth of
    heap."""
    with memoryview(frame) as view:
        return bytes(view)


def _named(frame: bytes, size_code: int, named_id: bytes) -> bytes:
    """`frame`, which names no dictionary, naming one (Dictionary_ID_flag `size_code`, field
    `named_id`: after the descriptor and the window descriptor, if any), in one block of its own
    size: joined from views of `frame`, not from slices (a copy each, for every page packed:
    the blocks they left free among the pages kept held 300 KiB in a store of 15 MB)."""
    descriptor = frame[4]
    at = 5 if descriptor & _SINGLE_SEGMENT else 6
    with memoryview(frame) as view:
        return b"".join(
            (view[:4], bytes((descriptor | size_code,)), view[5:at], named_id, view[at:])
        )
