"""The page codecs (`ramster.page`): lz4 and zstd per pool, same-filled pages as one byte
whatever the codec, and `check_packed` as strict for a zstd frame as for an lz4 block."""

from __future__ import annotations

import random

import pytest
import zstandard

from ramster.errors import InvalidArgument
from ramster.page import (
    LZ4_CODEC,
    Codec,
    PackedPage,
    check_packed,
    codec_of,
    pack_page,
    parse_codec,
    unpack_page,
    zstd_dictionary_id,
)
from ramster.params import ModuleParams
from ramster.tmem.keys import PageVersion
from ramster.trust.seal import OriginSeal
from ramster.wire.messages import packed_encoding, packed_of

ZSTD1 = Codec("zstd", 1)


def text(seed: int, size: int = 4096) -> bytes:
    rng = random.Random(seed)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"%d" % seed]
    return b" ".join(rng.choice(words) for _ in range(size))[:size]


PAGE = text(1)
FRAME = pack_page(PAGE, ZSTD1).payload


@pytest.mark.parametrize("codec", [LZ4_CODEC, ZSTD1, Codec("zstd", 19)])
@pytest.mark.parametrize("page_size", [512, 4096, 65536])
def test_every_codec_packs_a_page_that_unpacks_exact(codec: Codec, page_size: int) -> None:
    page = text(page_size, page_size)
    packed = pack_page(page, codec)
    assert (packed.codec, packed.same_filled, packed.page_size) == (codec.name, False, page_size)
    assert len(packed.payload) < page_size // 2
    assert unpack_page(packed) == page
    assert check_packed(packed, "data") == packed


@pytest.mark.parametrize("codec", [LZ4_CODEC, ZSTD1])
def test_a_same_filled_page_is_one_byte_whatever_the_codec(codec: Codec) -> None:
    assert pack_page(b"\x07" * 4096, codec) == PackedPage(b"\x07", True, 4096)
    assert pack_page(bytes(65536), codec) == PackedPage(b"\x00", True, 65536)


def test_a_zstd_frame_states_its_size_and_checksum_and_names_no_dictionary() -> None:
    header = zstandard.get_frame_parameters(FRAME)
    assert (header.content_size, header.has_checksum, header.dict_id) == (4096, True, 0)
    assert zstd_dictionary_id(FRAME) == 0
    assert zstd_dictionary_id(b"junk") == 0


NOT_ONE = "pages[3].data is not one whole zstd frame of a page ({} bytes received)"
NO_FRAME = (
    "pages[3].data is not a zstd frame of a page with its size and checksum ({} bytes received)"
)
NO_CHECKSUM = zstandard.ZstdCompressor(write_checksum=False).compress(PAGE)
NO_SIZE = zstandard.ZstdCompressor(write_content_size=False, write_checksum=True).compress(PAGE)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (FRAME[:-1], NOT_ONE.format(len(FRAME) - 1)),
        (FRAME + b"x", NOT_ONE.format(len(FRAME) + 1)),
        (FRAME + FRAME, NOT_ONE.format(2 * len(FRAME))),
        (b"junk", NO_FRAME.format(4)),
        (pack_page(PAGE[:4000], ZSTD1).payload, "pages[3].data length 4000 != pool page_size 4096"),
        (NO_CHECKSUM, NO_FRAME.format(len(NO_CHECKSUM))),
        (NO_SIZE, NO_FRAME.format(len(NO_SIZE))),
    ],
)
def test_a_zstd_page_that_is_not_exactly_one_page_is_refused_naming_the_field(
    payload: bytes, message: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        check_packed(PackedPage(payload, False, 4096, "zstd"), "pages[3].data")
    assert refused.value.message == message
    assert refused.value.field_name == "pages[3].data"


def test_a_zstd_frame_naming_a_dictionary_the_pool_lacks_is_refused_and_never_decoded() -> None:
    samples = [text(seed) for seed in range(200)]
    trained = zstandard.train_dictionary(8192, samples, dict_id=77)
    frame = zstandard.ZstdCompressor(dict_data=trained, write_checksum=True).compress(PAGE)
    with pytest.raises(InvalidArgument) as refused:
        check_packed(PackedPage(frame, False, 4096, "zstd"), "pages[0].data")
    assert refused.value.message == (
        "pages[0].data names zstd dictionary 77, which its reader does not know"
    )
    # A holder of another node's pages has none of its dictionaries: it checks the header only.
    assert check_packed(PackedPage(frame, False, 4096, "zstd"), "data", None) == PackedPage(
        frame, False, 4096, "zstd", 77
    )
    with pytest.raises(InvalidArgument, match=r"^data length 4096 != pool page_size 8192$"):
        check_packed(PackedPage(frame, False, 8192, "zstd"), "data", None)


@pytest.mark.parametrize(
    ("name", "level", "message", "field"),
    [
        ("brotli", 0, "codec 'brotli' is invalid: expected lz4 or zstd", "codec"),
        ("zstd", 20, "codec_level 20 is invalid: expected 1..19 for zstd (0: 1)", "codec_level"),
        (
            "lz4",
            3,
            "codec_level 3 is invalid: expected 0 for lz4, which has no levels",
            "codec_level",
        ),
    ],
)
def test_bad_codec_names_and_levels_are_refused_naming_field_and_value(
    name: str, level: int, message: str, field: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        codec_of(name, level)
    assert (refused.value.message, refused.value.field_name) == (message, field)


def test_codecs_as_people_write_them() -> None:
    assert [parse_codec(t) for t in ("lz4", "zstd", "ZSTD:7", " zstd:19 ")] == [
        LZ4_CODEC,
        ZSTD1,
        Codec("zstd", 7),
        Codec("zstd", 19),
    ]
    assert [str(c) for c in (LZ4_CODEC, Codec("zstd", 7))] == ["lz4", "zstd:7"]
    for bad in ("gzip", "zstd:20", "zstd:x", "lz4:1", "zstd:-1"):
        with pytest.raises(InvalidArgument) as refused:
            parse_codec(bad, "param codec value")
        assert refused.value.message == (
            f"param codec value {bad!r} is invalid: expected lz4, zstd or zstd:LEVEL with "
            "LEVEL in 1..19"
        )


def test_the_node_default_codec_is_a_param() -> None:
    params = ModuleParams()
    assert params.as_text()["codec"] == "lz4"
    assert params.with_text("codec", "zstd:3").codec == Codec("zstd", 3)
    assert params.with_text("codec", "zstd").as_text()["codec"] == "zstd:1"
    with pytest.raises(InvalidArgument) as refused:
        params.with_text("codec", "brotli")
    assert refused.value.message == (
        "param codec value 'brotli' is invalid: expected lz4, zstd or zstd:LEVEL with LEVEL in "
        "1..19"
    )


def test_a_zstd_page_travels_as_its_encoding_and_comes_back_the_same() -> None:
    packed = pack_page(PAGE, ZSTD1)
    encoding = packed_encoding(packed)
    assert packed_of(packed.payload, encoding, 4096) == packed
    lz4 = pack_page(PAGE)
    assert packed_of(lz4.payload, packed_encoding(lz4), 4096) == lz4
    fill = pack_page(bytes(4096), ZSTD1)
    assert packed_of(fill.payload, packed_encoding(fill), 4096) == fill


def test_a_sealed_zstd_page_opens_as_the_same_zstd_page() -> None:
    seal = OriginSeal("n1", bytes(range(32)))
    at = PageVersion(3, (1, 2, 3), 4, 5)
    packed = pack_page(PAGE, ZSTD1)
    sealed = seal.seal(at, packed)
    assert len(sealed) == len(packed.payload) + 29
    assert seal.open(at, sealed, 4096) == packed


@pytest.mark.parametrize(
    ("name", "text", "expected", "good"),
    [
        ("dict_samples", "50", "whole pages in 100..100000", "4096"),
        ("dict_size", "1024", "whole bytes in 4096..1048576", "4096"),
        ("dict_drift", "0", "a whole percent in 1..100", "25"),
    ],
)
def test_the_dictionary_params_refuse_values_out_of_range(
    name: str, text: str, expected: str, good: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        ModuleParams().with_text(name, text)
    assert refused.value.message == f"param {name} value {text!r} is invalid: expected {expected}"
    assert ModuleParams().with_text(name, good).as_text()[name] == good
