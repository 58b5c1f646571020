"""`ramster.page_dictionary`: pages packed with a trained dictionary's content alone, on the bench
corpus; every frame names its dictionary; frames made with the whole dictionary (before) still
decode; a dictionary that cannot be split is packed with whole; what a dictionary and its frames
keep of the heap."""

from __future__ import annotations

import struct
import sys
import tracemalloc

import pytest
import zstandard

from ramster.errors import InvalidArgument
from ramster.page import Codec, PackedPage, check_packed, pack_page, unpack_page
from ramster.page_dictionary import (
    _TABLES,
    DDICT_BYTES,
    PageDictionary,
    _fse_table_size,
    _header_size,
)
from ramster.workload.corpus import build_corpus
from ramster.zcache.dictionaries import (
    DEFAULT_SAMPLES,
    DEFAULT_SIZE,
    HELD_OUT,
    Samples,
    Training,
    train,
)

ZSTD1 = Codec("zstd", 1)


@pytest.fixture(scope="module")
def corpus_pages() -> list[bytes]:
    """The bench corpus's pages that are not same-filled (those a pool samples)."""
    pages = build_corpus(count=4096).pages
    return [page for page in pages if page.count(page[:1]) != len(page)]


@pytest.fixture(scope="module")
def trained(corpus_pages: list[bytes]) -> bytes:
    data = train(Training(1, 300, Samples(corpus_pages[:DEFAULT_SAMPLES]), DEFAULT_SIZE, 1))
    assert data is not None
    return data


def test_a_dictionary_trained_on_the_bench_corpus_pays_off_at_level_1(
    corpus_pages: list[bytes], trained: bytes
) -> None:
    # At level 1 zstd reuses a whole dictionary's entropy tables on every page unweighed: it
    # packed these pages larger than zstd alone, and the node declined the dictionary.
    held_out = corpus_pages[:DEFAULT_SAMPLES:HELD_OUT]
    later = corpus_pages[DEFAULT_SAMPLES:]
    dictionary = PageDictionary(trained)
    for pages in (held_out, later):
        alone = sum(len(pack_page(page, ZSTD1).payload) for page in pages)
        packed = sum(len(pack_page(page, ZSTD1, dictionary).payload) for page in pages)
        whole = zstandard.ZstdCompressor(level=1, dict_data=dictionary.zstd, write_checksum=True)
        assert sum(len(whole.compress(page)) for page in pages) > alone
        assert packed < alone * 0.97


@pytest.mark.parametrize("dict_id", [7, 300, 70000, 2**31 - 1])
def test_every_frame_made_with_a_dictionary_names_it_and_unpacks_exact(
    corpus_pages: list[bytes], dict_id: int
) -> None:
    data = train(Training(1, dict_id, Samples(corpus_pages[:DEFAULT_SAMPLES]), DEFAULT_SIZE, 1))
    assert data is not None
    dictionary = PageDictionary(data)
    for page in corpus_pages[DEFAULT_SAMPLES : DEFAULT_SAMPLES + 300]:
        packed = pack_page(page, ZSTD1, dictionary)
        assert packed.dictionary == dict_id
        assert zstandard.get_frame_parameters(packed.payload).dict_id == dict_id
        unnamed = PackedPage(packed.payload, False, 4096, "zstd")
        assert check_packed(unnamed, "data", {dict_id: dictionary}) == packed
        assert unpack_page(packed, {dict_id: dictionary}) == page


def test_a_frame_made_with_the_whole_dictionary_still_unpacks(
    corpus_pages: list[bytes], trained: bytes
) -> None:
    # Pages stored (persistent pools' copies on peers) before dictionaries were split.
    dictionary = PageDictionary(trained)
    whole = zstandard.ZstdCompressor(
        level=1, dict_data=zstandard.ZstdCompressionDict(trained), write_checksum=True
    )
    for page in corpus_pages[DEFAULT_SAMPLES : DEFAULT_SAMPLES + 100]:
        packed = check_packed(PackedPage(whole.compress(page), False, 4096, "zstd"), "data", None)
        assert unpack_page(packed, {300: dictionary}) == page


def test_a_page_read_with_another_dictionary_of_its_id_is_lost_never_wrong(
    corpus_pages: list[bytes], trained: bytes
) -> None:
    other = train(Training(1, 300, Samples(corpus_pages[-DEFAULT_SAMPLES:]), DEFAULT_SIZE, 1))
    assert other is not None and other != trained
    lost = 0
    for page in corpus_pages[DEFAULT_SAMPLES : DEFAULT_SAMPLES + 100]:
        packed = pack_page(page, ZSTD1, PageDictionary(trained))
        try:
            # A frame that took nothing from its dictionary decodes the same with any.
            assert unpack_page(packed, {300: PageDictionary(other)}) == page
        except InvalidArgument:
            lost += 1
    assert lost > 50


def test_a_dictionary_whose_repeat_offsets_are_not_zstds_packs_with_the_whole_of_it(
    corpus_pages: list[bytes], trained: bytes
) -> None:
    # Its frames could not be read with the whole dictionary if packed with the content alone.
    odd = _odd(trained)
    dictionary = PageDictionary(odd)
    whole = zstandard.ZstdCompressor(
        level=1,
        dict_data=zstandard.ZstdCompressionDict(odd),
        write_checksum=True,
        write_content_size=True,
    )
    for page in corpus_pages[DEFAULT_SAMPLES : DEFAULT_SAMPLES + 50]:
        packed = pack_page(page, ZSTD1, dictionary)
        assert packed.payload == whole.compress(page)
        assert unpack_page(packed, {300: dictionary}) == page


def test_a_dictionary_keeps_zstds_copy_of_its_bytes_not_them(trained: bytes) -> None:
    # A node's dictionary is trained in a thread: kept, its bytes pinned that thread's arena.
    given = bytes(bytearray(trained))
    references = sys.getrefcount(given)
    dictionary = PageDictionary(given)
    assert sys.getrefcount(given) == references
    assert dictionary.size == len(trained) == DEFAULT_SIZE
    assert dictionary.data == trained
    assert repr(dictionary) == f"<PageDictionary 300 of {DEFAULT_SIZE} bytes>"


@pytest.mark.parametrize("split", [True, False], ids=["content alone", "whole"])
def test_a_frame_made_with_a_dictionary_keeps_only_its_own_size_of_heap(
    corpus_pages: list[bytes], trained: bytes, split: bool
) -> None:
    # zstandard allocates a frame the size of zstd's bound and shrinks it in place.
    data = trained if split else _odd(trained)
    dictionary = PageDictionary(data)
    pack_page(corpus_pages[0], ZSTD1, dictionary)  # its compressor, made once
    tracemalloc.start()
    try:
        for page in corpus_pages[DEFAULT_SAMPLES : DEFAULT_SAMPLES + 20]:
            before = tracemalloc.get_traced_memory()[0]
            payload = pack_page(page, ZSTD1, dictionary).payload
            assert tracemalloc.get_traced_memory()[0] - before == sys.getsizeof(payload)
            del payload
    finally:
        tracemalloc.stop()


def _odd(trained: bytes) -> bytes:
    """`trained` with repeat offsets that are not zstd's: it is packed with whole."""
    at = trained.index(struct.pack("<3I", 1, 4, 8))
    return trained[:at] + struct.pack("<3I", 1, 4, 9) + trained[at + 12 :]


# Two FSE table descriptions (RFC 8878 §4.1.1) with symbols of probability 0, which trained
# dictionaries have none of: accuracy log 5; symbol 0 at 0, then repeat flags (1 zero more; 3
# zeros more, then none); then the next symbol at 32 (63 in 6 bits): 17 and 19 bits, 3 bytes.
ZEROS_1 = ((1 << 4) | (1 << 9) | (63 << 11)).to_bytes(3, "little")
ZEROS_4 = ((1 << 4) | (3 << 9) | (0 << 11) | (63 << 13)).to_bytes(3, "little")


@pytest.mark.parametrize("table", [0, 2], ids=["offset codes", "literal lengths"])
@pytest.mark.parametrize("spliced", [ZEROS_1, ZEROS_4], ids=["1 zero more", "4 zeros more"])
def test_a_dictionarys_header_is_read_as_zstd_reads_it(
    trained: bytes, table: int, spliced: bytes
) -> None:
    # zstd's own reader (ZDICT_getDictHeaderSize) is in zstandard's cffi backend, which the
    # node does not import.
    from zstandard.backend_cffi import lib  # type: ignore[attr-defined]

    at = 9 + (trained[8] if trained[8] < 128 else (trained[8] - 126) // 2)
    starts = []
    for max_symbol, max_log in _TABLES:
        size = _fse_table_size(trained, at, max_symbol, max_log)
        assert size is not None
        starts.append((at, size))
        at += size
    assert _header_size(trained) == lib.ZDICT_getDictHeaderSize(trained, len(trained)) == at + 12
    start, size = starts[table]
    data = trained[:start] + spliced + trained[start + size :]
    assert _header_size(data) == lib.ZDICT_getDictHeaderSize(data, len(data)) == at + 12 - size + 3
    assert _header_size(data[: at + 11 - size + 3]) is None
    assert _header_size(data[:3] + b"\xed" + data[4:]) is None  # not zstd's magic


def test_a_dictionary_holds_what_zstd_says_its_parts_take(
    corpus_pages: list[bytes], trained: bytes
) -> None:
    # zstandard's C backend makes a DDict by reference for a decompressor with a dictionary
    # and does not tell its size; its cffi backend (not imported by the node) reaches zstd's.
    from zstandard.backend_cffi import ffi, lib  # type: ignore[attr-defined]

    buffer = ffi.from_buffer(trained)
    ddict = lib.ZSTD_createDDict_byReference(buffer, len(trained))
    try:
        assert lib.ZSTD_sizeof_DDict(ddict) == DDICT_BYTES
    finally:
        lib.ZSTD_freeDDict(ddict)
    assert lib.ZSTD_estimateDDictSize(len(trained), lib.ZSTD_dlm_byRef) == DDICT_BYTES
    dictionary = PageDictionary(trained)
    header = _header_size(trained)
    assert header is not None
    reading = 2 * len(trained) - header + DDICT_BYTES + lib.ZSTD_estimateDCtxSize()
    assert dictionary.held_bytes == reading
    content = zstandard.ZstdCompressionDict(
        trained[header:], dict_type=zstandard.DICT_TYPE_RAWCONTENT
    )
    # A compressor is made by the first page packed, at the level asked; one at a time.
    for level in (1, 3, 1):
        pack_page(corpus_pages[0], Codec("zstd", level), dictionary)
        compressor = zstandard.ZstdCompressor(level=level, dict_data=content, write_checksum=True)
        compressor.compress(corpus_pages[0])
        assert dictionary.held_bytes == reading + compressor.memory_size()
    dictionary.stop_packing()
    assert dictionary.held_bytes == reading
    packed = pack_page(corpus_pages[1], ZSTD1, dictionary)
    assert unpack_page(packed, {300: dictionary}) == corpus_pages[1]
