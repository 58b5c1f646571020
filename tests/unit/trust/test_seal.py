"""The page seal: AES-256-GCM bound to origin, pool, key and version, with exact values."""

from __future__ import annotations

import hashlib

import pytest

from ramster.errors import InvalidArgument
from ramster.page import PackedPage, pack_page
from ramster.tmem.keys import PageVersion
from ramster.trust.seal import (
    AAD_BYTES,
    COUNTER_LIMIT,
    NONCE_BYTES,
    OVERHEAD,
    PREFIX_BYTES,
    Nonces,
    OriginSeal,
    PageSeal,
    SealBroken,
    page_aad,
)

KEY = bytes(range(32))
PAGE = b"\x1f" + b"lz4-packed page " * 100
AAD = page_aad("n1", 3, (1, 2, 3), 4, 5)
DOES_NOT_OPEN = (
    "sealed page of {} bytes does not open: sealed under another key or for another origin, "
    "pool, key or version, or damaged"
)


def test_the_aad_packs_every_field_at_a_fixed_width() -> None:
    assert AAD_BYTES == 120
    assert page_aad("n1", 3, (1, 2, 3), 4, 5) == (
        b"ramster-page-v1\0"
        + b"n1".ljust(64, b"\0")
        + (3).to_bytes(4, "big")
        + b"".join(word.to_bytes(8, "big") for word in (1, 2, 3))
        + (4).to_bytes(4, "big")
        + (5).to_bytes(8, "big")
    )
    assert len(page_aad("n" * 63, 2**32 - 1, (2**64 - 2,) * 3, 2**32 - 1, 2**64 - 1)) == 120


def test_an_origin_longer_than_its_field_goes_abbreviated_and_distinct() -> None:
    """A node name of up to 253 characters (a Kubernetes node's): struct would cut it to 64
    bytes, and two names alike that far would seal alike."""
    first, second = "w" * 100 + "1", "w" * 100 + "2"
    aad = page_aad(first, 3, (1, 2, 3), 4, 5)
    assert len(aad) == 120
    digest = hashlib.sha256(first.encode()).hexdigest()[:16]
    assert aad[16:80] == ("w" * 46 + "~" + digest).encode() + b"\0"
    assert aad != page_aad(second, 3, (1, 2, 3), 4, 5)
    sealed = OriginSeal(first, KEY).seal(AT, pack_page(PAGE))
    with pytest.raises(SealBroken):
        OriginSeal(second, KEY).open(AT, sealed, 4096)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("n 1", 3, (1, 2, 3), 4, 5),
            "origin 'n 1' is invalid: expected 1-253 letters, digits, "
            "'.', '_' or '-', starting alnum",
        ),
        (
            ("n1", 2**32, (1, 2, 3), 4, 5),
            "pool_uid 4294967296 is invalid: expected an int in 0..4294967295",
        ),
        (
            ("n1", 3, (1, 2), 4, 5),
            "oid (1, 2) is invalid: expected an int or a tuple of three ints",
        ),
        (("n1", 3, (1, 2, 3), -1, 5), "index -1 is invalid: expected an int in 0..2**32-1"),
        (
            ("n1", 3, (1, 2, 3), 4, 2**64),
            "version 18446744073709551616 is invalid: expected an int in 0..18446744073709551615",
        ),
    ],
)
def test_the_aad_refuses_fields_out_of_range(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        page_aad(*args)  # type: ignore[arg-type]
    assert refused.value.message == message


def test_a_sealed_page_opens_with_its_key_and_aad() -> None:
    seal = PageSeal(KEY)
    sealed = seal.seal(PAGE, AAD)
    assert len(sealed) == len(PAGE) + 28 == len(PAGE) + OVERHEAD
    assert PAGE not in sealed
    assert seal.open(sealed, AAD) == PAGE
    assert PageSeal(KEY).open(sealed, AAD) == PAGE  # the key alone opens it: a restarted node's


def test_two_seals_of_one_page_differ() -> None:
    seal = PageSeal(KEY)
    assert seal.seal(PAGE, AAD) != seal.seal(PAGE, AAD)  # a fresh nonce each time


def test_a_seal_counts_its_nonces_after_one_random_prefix() -> None:
    seal = PageSeal(KEY)
    nonces = [seal.seal(PAGE, AAD)[:12] for _ in range(3)]
    prefix = nonces[0][:PREFIX_BYTES]
    assert nonces == [prefix + count.to_bytes(4, "big") for count in (0, 1, 2)]
    assert prefix != bytes(PREFIX_BYTES)  # os.urandom's, not a constant


def test_another_seal_of_the_same_key_draws_another_prefix() -> None:
    # A restarted node seals under the same key: its nonces must not meet the earlier ones.
    prefixes = {Nonces().next()[:PREFIX_BYTES] for _ in range(100)}
    assert len(prefixes) == 100


def test_a_prefix_is_drawn_anew_when_its_counter_runs_out() -> None:
    nonces = Nonces(start=COUNTER_LIMIT - 1)
    last, first, second = nonces.next(), nonces.next(), nonces.next()
    assert last[PREFIX_BYTES:] == (COUNTER_LIMIT - 1).to_bytes(4, "big")
    assert first[PREFIX_BYTES:] == bytes(4)
    assert second == first[:PREFIX_BYTES] + (1).to_bytes(4, "big")
    assert first[:PREFIX_BYTES] != last[:PREFIX_BYTES]


def test_the_layout_is_nonce_then_ciphertext_and_tag() -> None:
    # McGrew & Viega, "The Galois/Counter Mode of Operation", test case 14 (256-bit zero key,
    # zero nonce, one zero block, no associated data).
    ciphertext = bytes.fromhex("cea7403d4d606b6e074ec5d3baf39d18")
    tag = bytes.fromhex("d0d1c8a799996bf0265b98b5d48ab919")
    assert PageSeal(bytes(32)).open(bytes(12) + ciphertext + tag, b"") == bytes(16)


@pytest.mark.parametrize(
    "other",
    [
        page_aad("n2", 3, (1, 2, 3), 4, 5),
        page_aad("n1", 4, (1, 2, 3), 4, 5),
        page_aad("n1", 3, (9, 2, 3), 4, 5),
        page_aad("n1", 3, (1, 9, 3), 4, 5),
        page_aad("n1", 3, (1, 2, 9), 4, 5),
        page_aad("n1", 3, (1, 2, 3), 9, 5),
        page_aad("n1", 3, (1, 2, 3), 4, 9),
    ],
    ids=["origin", "pool", "oid-word0", "oid-word1", "oid-word2", "index", "version"],
)
def test_a_page_does_not_open_as_another(other: bytes) -> None:
    seal = PageSeal(KEY)
    sealed = seal.seal(PAGE, AAD)
    with pytest.raises(SealBroken) as refused:
        seal.open(sealed, other)
    assert refused.value.message == DOES_NOT_OPEN.format(len(PAGE) + 28)


@pytest.mark.parametrize("bit", [0, 12 * 8, 12 * 8 + 7, -1])
def test_any_flipped_bit_is_refused(bit: int) -> None:
    seal = PageSeal(KEY)
    sealed = bytearray(seal.seal(PAGE, AAD))
    position = bit if bit >= 0 else len(sealed) * 8 - 1  # nonce, ciphertext, last tag bit
    sealed[position // 8] ^= 1 << (position % 8)
    with pytest.raises(SealBroken) as refused:
        seal.open(bytes(sealed), AAD)
    assert refused.value.message == DOES_NOT_OPEN.format(len(sealed))


def test_another_key_is_refused() -> None:
    sealed = PageSeal(KEY).seal(PAGE, AAD)
    with pytest.raises(SealBroken):
        PageSeal(bytes(32)).open(sealed, AAD)


def test_a_sealed_page_shorter_than_nonce_and_tag_is_refused() -> None:
    with pytest.raises(SealBroken) as refused:
        PageSeal(KEY).open(bytes(27), AAD)
    assert refused.value.message == "sealed page of 27 bytes is too short: expected at least 28"


@pytest.mark.parametrize(("key", "given"), [(bytes(16), "16 bytes"), ("k" * 32, "type str")])
def test_a_page_key_is_32_bytes(key: bytes, given: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        PageSeal(key)
    assert refused.value.message == f"page key of {given} is invalid: expected 32 bytes"


def test_the_repr_shows_no_key() -> None:
    assert repr(PageSeal(KEY)) == "<PageSeal AES-256-GCM>"


# -- OriginSeal: a shipped page sealed for its place, its encoding inside ----------------------

AT = PageVersion(pool_uid=3, oid=(7, 0, 0), index=5, version=1000)
TEXT = b"page 5 of object 7 " * 215 + b"." * 11  # 4096 bytes


@pytest.mark.parametrize("page", [pack_page(TEXT), pack_page(b"\x07" * 4096)])
def test_an_origin_seal_opens_its_own_page_as_it_was_packed(page: PackedPage) -> None:
    origin = OriginSeal("n1", KEY)
    sealed = origin.seal(AT, page)
    assert len(sealed) == len(page.payload) + 1 + OVERHEAD
    assert origin.open(AT, sealed, 4096) == page


def test_an_origin_seal_binds_the_page_aad_of_its_origin_and_place() -> None:
    sealed = OriginSeal("n1", KEY).seal(AT, pack_page(TEXT))
    aad = page_aad("n1", AT.pool_uid, AT.oid, AT.index, AT.version)
    assert PageSeal(KEY).open(sealed, aad) == b"L" + pack_page(TEXT).payload
    with pytest.raises(SealBroken):
        PageSeal(KEY).open(sealed, page_aad("n1", AT.pool_uid, AT.oid, AT.index, AT.version + 1))


def test_a_sealed_page_shows_nothing_of_its_block() -> None:
    block = pack_page(TEXT).payload
    sealed = OriginSeal("n1", KEY).seal(AT, pack_page(TEXT))
    assert block[:16] not in sealed and b"object 7" not in sealed


@pytest.mark.parametrize(
    "other",
    [
        PageVersion(pool_uid=4, oid=(7, 0, 0), index=5, version=1000),
        PageVersion(pool_uid=3, oid=(8, 0, 0), index=5, version=1000),
        PageVersion(pool_uid=3, oid=(7, 0, 0), index=6, version=1000),
        PageVersion(pool_uid=3, oid=(7, 0, 0), index=5, version=1001),
    ],
)
def test_a_sealed_page_never_opens_for_another_place(other: PageVersion) -> None:
    origin = OriginSeal("n1", KEY)
    sealed = origin.seal(AT, pack_page(TEXT))
    with pytest.raises(SealBroken):
        origin.open(other, sealed, 4096)


def test_a_sealed_page_never_opens_for_another_origin_or_key() -> None:
    sealed = OriginSeal("n1", KEY).seal(AT, pack_page(TEXT))
    with pytest.raises(SealBroken):
        OriginSeal("n2", KEY).open(AT, sealed, 4096)  # same key, another node's name
    with pytest.raises(SealBroken):
        OriginSeal("n1", bytes(32)).open(AT, sealed, 4096)


def test_an_origin_seal_names_its_origin_not_its_key() -> None:
    assert repr(OriginSeal("n1", KEY)) == "<OriginSeal 'n1' AES-256-GCM>"


def test_open_all_opens_a_batch_and_gives_none_for_each_page_that_does_not() -> None:
    """A batch as a holder's answer gives it (memoryview slices of one buffer): a page flipped,
    one answered at another version, one too short and a miss are None; the others come back
    exact, whatever their encoding."""
    origin = OriginSeal("n1", KEY)
    pages = [pack_page(TEXT), pack_page(b"\x07" * 4096), pack_page(TEXT[::-1]), pack_page(TEXT)]
    places = [PageVersion(3, (7, 0, 0), index, 1000 + index) for index in range(4)]
    sealed = [origin.seal(at, page) for at, page in zip(places, pages, strict=True)]
    sealed[2] = sealed[2][:40] + bytes([sealed[2][40] ^ 1]) + sealed[2][41:]
    view = memoryview(b"".join(sealed))
    ends = [sum(map(len, sealed[: n + 1])) for n in range(4)]
    answers = [
        (at.pool_uid, at.oid, at.index, at.version, 4096, view[end - len(box) : end])
        for at, box, end in zip(places, sealed, ends, strict=True)
    ]
    wrong_version = (3, (7, 0, 0), 3, 1004, 4096, answers[3][5])
    too_short = (3, (7, 0, 0), 0, 1000, 4096, view[: OVERHEAD - 1])
    opened = origin.open_all(
        [answers[0], answers[1], answers[2], None, wrong_version, too_short, answers[3]]
    )
    assert opened == [pages[0], pages[1], None, None, None, None, pages[3]]
    assert [type(page.payload) for page in opened if page is not None] == [bytes] * 3


def test_seal_all_seals_each_page_for_its_place_under_a_nonce_of_its_own() -> None:
    """A put's batch sealed in one call: each page opens for its own place only, each under
    its own nonce (none alike with another's, nor with a lone seal's before or after)."""
    origin = OriginSeal("n1", KEY)
    pages = [pack_page(TEXT), pack_page(b"\x07" * 4096), pack_page(TEXT[::-1])]
    places = [PageVersion(3, (7, 0, 0), index, 1000 + index) for index in range(3)]
    before = origin.seal(places[0], pages[0])
    sealed = origin.seal_all(zip(places, pages, strict=True))
    after = origin.seal(places[0], pages[0])
    assert [origin.open(at, box, 4096) for at, box in zip(places, sealed, strict=True)] == pages
    assert [len(box) for box in sealed] == [len(p.payload) + 1 + OVERHEAD for p in pages]
    nonces = [box[:NONCE_BYTES] for box in (before, *sealed, after)]
    assert len(set(nonces)) == 5
    with pytest.raises(SealBroken):
        origin.open(places[1], sealed[0], 4096)
    assert origin.seal_all([]) == []


def test_open_all_refuses_an_encoding_byte_of_none_as_open_does() -> None:
    """Only a key holder could seal such a page; it still does not open."""
    aad = page_aad("n1", AT.pool_uid, AT.oid, AT.index, AT.version)
    sealed = PageSeal(KEY).seal(b"Q" + pack_page(TEXT).payload, aad)
    origin = OriginSeal("n1", KEY)
    with pytest.raises(SealBroken) as refused:
        origin.open(AT, sealed, 4096)
    assert refused.value.message == (
        "sealed page holds encoding b'Q': expected an lz4 block, a zstd frame or a fill"
    )
    assert origin.open_all([(3, (7, 0, 0), 5, 1000, 4096, sealed)]) == [None]
