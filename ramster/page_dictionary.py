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

What a dictionary holds (`held_bytes`, which its node charges to its budget) is about ten times
its size: zstd's copies of it (the whole one and its content), the decoding tables zstd builds
from it (a DDict), a decompression context, and, once it packs, a compression context with the
dictionary loaded into it (its hash tables; zstd's level picks their size). All but the DDict
are measured (`len`, `memory_size()`); the DDict's size is zstd's `sizeof(ZSTD_DDict)`, which
zstandard's C backend does not tell (`DDICT_BYTES`, checked against zstd's own figure in the
tests). The compressor is made on the first page packed, not before: a node's dictionary packs
only while it is its pool's newest, and only pages its clients send raw.

Pure: no I/O, no asyncio. Not here: packing a page (`ramster.page`), which dictionaries a pool
has (`ramster.zcache.dictionaries`).
"""

from __future__ import annotations

import struct

import zstandard

from ramster.errors import InvalidArgument

_DEFAULT_REPEAT_OFFSETS = struct.pack("<3I", 1, 4, 8)
"""The repeat offsets a frame starts with when its dictionary states none (zstd's)."""
_SINGLE_SEGMENT = 0x20
_DICTIONARY_ID_SIZES = ((1 << 8, 1), (1 << 16, 2), (1 << 32, 4))
"""(ids below, bytes of the id in a frame header), as zstd writes it: the fewest that fit."""


DDICT_BYTES = 27_352
"""Bytes of a DDict made by reference (zstd 1.5's `sizeof(ZSTD_DDict)`: its entropy tables), as
zstandard makes one for every decompressor with a dictionary."""


class PageDictionary:
    """A zstd dictionary, immutable, named by its id (1..2**32-1) in every frame made with it.

    Made of fragments of the pages it was trained on: as secret as they are."""

    __slots__ = (
        "_compressor",
        "_decompressor",
        "_fixed_bytes",
        "_level",
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
        self._compressor: zstandard.ZstdCompressor | None = None
        self._level = 0
        self._decompressor = zstandard.ZstdDecompressor(dict_data=self.zstd)
        copies = len(self.zstd) + (0 if self._packs_with is self.zstd else len(self._packs_with))
        self._fixed_bytes = copies + DDICT_BYTES + self._decompressor.memory_size()

    def __repr__(self) -> str:
        return f"<PageDictionary {self.dict_id} of {self.size} bytes>"

    @property
    def data(self) -> bytes:
        """The dictionary in zstd's format, as it is recorded and sent (a copy)."""
        data: bytes = self.zstd.as_bytes()
        return data

    @property
    def held_bytes(self) -> int:
        """Bytes this dictionary holds now: zstd's copies of it, its DDict, its decompression
        context and its compression context, if it has packed (the context grows to fit the
        first page, so its size is known only after)."""
        compressor = self._compressor
        return self._fixed_bytes + (0 if compressor is None else compressor.memory_size())

    def pack(self, page: bytes, level: int) -> bytes:
        """The zstd frame of `page` at `level`, made with this dictionary and naming it, in a
        block of its own size (`ramster.page.pack_page` keeps it as it is). One compressor is
        kept, of the last level asked (a pool packs at one level): at levels 3 and above its
        context takes 0.5 MiB and more beside a 32 KiB dictionary."""
        compressor = self._compressor
        if compressor is None or level != self._level:
            self._level = level
            compressor = self._compressor = zstandard.ZstdCompressor(
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

    def stop_packing(self) -> None:
        """This dictionary packs no more pages (a newer one took over its pool): its
        compressor goes, pages are still read with it."""
        self._compressor = None

    @property
    def decompressor(self) -> zstandard.ZstdDecompressor:
        return self._decompressor


def _content_start(data: bytes) -> int | None:
    """Where the content of zstd dictionary `data` starts (after its header), or None if its
    frames cannot be made with the content alone: its repeat offsets are not zstd's defaults
    (a trained one's are), or its header cannot be read."""
    size = _header_size(data)
    if size is None or size >= len(data):
        return None
    return size if data[size - 12 : size] == _DEFAULT_REPEAT_OFFSETS else None


_MAGIC = 0xEC30A437
_TABLES = ((31, 8), (52, 9), (35, 9))
"""The FSE tables of a dictionary's header, in order (offset codes, match lengths, literal
lengths): (largest symbol, largest accuracy log)."""
_FSE_TABLE_MAX = 128
"""Bytes an FSE table description takes at most here: 53 symbols of up to 10 bits each, and
their repeat flags."""


def _header_size(data: bytes) -> int | None:
    """Bytes of zstd dictionary `data`'s header (RFC 8878 §5: magic, id, the Huffman tree of
    literals, three FSE tables, three repeat offsets), None if it is not one. Read here, not by
    zstd (ZDICT_getDictHeaderSize, which only zstandard's cffi backend exposes): importing that
    backend took 900 KiB more of each process's memory, and its first call 148 KiB."""
    if len(data) < 9 or int.from_bytes(data[:4], "little") != _MAGIC:
        return None
    # The Huffman tree: one byte, then that many bytes of FSE-packed weights (below 128), or
    # the weights of (byte - 127) symbols, two to a byte.
    head = data[8]
    at = 9 + (head if head < 128 else (head - 126) // 2)
    for max_symbol, max_log in _TABLES:
        size = _fse_table_size(data, at, max_symbol, max_log)
        if size is None:
            return None
        at += size
    at += 12
    return at if at <= len(data) else None


def _fse_table_size(data: bytes, at: int, max_symbol: int, max_log: int) -> int | None:
    """Bytes of the FSE table description at `at` (RFC 8878 §4.1.1, read as zstd's
    FSE_readNCount reads it), None if it is not one."""
    bits = int.from_bytes(data[at : at + _FSE_TABLE_MAX], "little")
    log = (bits & 15) + 5
    if log > max_log:
        return None
    pos, symbol, previous_zero = 4, 0, False
    remaining, threshold, width = (1 << log) + 1, 1 << log, log + 1
    while remaining > 1 and symbol <= max_symbol:
        if previous_zero:
            while ((bits >> pos) & 3) == 3:  # 2-bit repeat flags: 3 zeros more, and go on
                symbol, pos = symbol + 3, pos + 2
            symbol, pos = symbol + ((bits >> pos) & 3), pos + 2
        largest = 2 * threshold - 1 - remaining
        count = (bits >> pos) & (threshold - 1)
        if count < largest:
            pos += width - 1
        else:
            count = (bits >> pos) & (2 * threshold - 1)
            if count >= threshold:
                count -= largest
            pos += width
        count -= 1  # -1: a probability "less than 1", which takes one slot
        remaining -= abs(count)
        symbol += 1
        previous_zero = count == 0
        while remaining < threshold and threshold > 1:
            width, threshold = width - 1, threshold >> 1
    if remaining != 1 or symbol > max_symbol + 1 or pos > 8 * min(_FSE_TABLE_MAX, len(data) - at):
        return None
    return (pos + 7) >> 3


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
