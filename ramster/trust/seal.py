"""The seal on a page that leaves its origin: AES-256-GCM under a key only the origin holds.

A holder keeps sealed pages: it can neither read one nor hand back another in its place, since the
seal's associated data binds the page to where it belongs (`page_aad`: the origin node's name, the
pool's uid on the origin, the oid, the index and the page's version). Opening a page with other
associated data, another key, or any bit changed raises `SealBroken`. The 16-byte tag does what
the CRC-32 of a shipped page did, and more.

Sealed layout: the 96-bit nonce, then the ciphertext with its tag: ``len(payload) + 28`` bytes.
A nonce must never repeat under one key, and a page key outlives its node's restarts (so that a
restarted node can open what it shipped before). `Nonces` makes them as NIST SP 800-38D §8.2.1's
deterministic construction does, with a random fixed field: 64 random bits drawn when a seal is
made (each start of a node) and again every 2**32 seals, then a 32-bit counter. Two nonces of one
key can only be alike if two such draws are, a chance below P**2 / 2**65 after P draws: about
2**-25 after a million restarts, where random 96-bit nonces already reached 2**-33 after 2**32
seals (a day of a node sealing 50,000 pages a second). It also spares a page the system call
that drawing its nonce from `os.urandom` cost (0.4 µs of the 2 µs a seal took).

`OriginSeal` seals a shipped page for its place (`PageVersion`) with its encoding inside; the
peer link (`ramster.rpc.peer_link`) seals every page it puts and opens every page it gets. Not
here: the key file (`ramster.trust.files`).
"""

from __future__ import annotations

import functools
import itertools
import os
import struct
from collections.abc import Callable, Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from nodemanager.keys import abbreviated, check_node_name
from ramster.errors import InvalidArgument, RamsterError
from ramster.page import ZSTD as ZSTD_CODEC
from ramster.page import PackedPage, zstd_dictionary_id
from ramster.tmem.keys import U32_MAX, U64_MAX, Oid, PageVersion, as_oid, check_index

KEY_BYTES = 32
NONCE_BYTES = 12
PREFIX_BYTES = 8
"""The random part of a nonce; the other 4 bytes count seals."""
COUNTER_LIMIT = 2**32
"""Seals under one prefix: then a new one is drawn."""
_NONCE = struct.Struct(f">{PREFIX_BYTES}sI")
TAG_BYTES = 16
OVERHEAD = NONCE_BYTES + TAG_BYTES
"""Bytes a sealed page has beyond its payload."""

AAD_TAG = b"ramster-page-v1\0"
"""Starts every page's associated data: a seal made for anything else never opens as a page."""
DICTIONARY_AAD_TAG = b"ramster-dict-v1\0"
"""Starts a dictionary's associated data (then its pool uid and id, then the origin): a
dictionary's seal never opens as a page's, nor as another pool's or id's dictionary."""
_DICTIONARY_AAD = struct.Struct(f">{len(DICTIONARY_AAD_TAG)}sQQ")
MAX_ORIGIN = 63
"""Bytes of the origin's name in the associated data: a longer node name is `abbreviated` to
them (names of 63 bytes or less, all there were before, keep their associated data)."""
_AAD = struct.Struct(f">{len(AAD_TAG)}s{MAX_ORIGIN + 1}sIQQQIQ")
"""Tag, origin name (zero-padded: names hold no zero byte), pool uid, three oid words, index,
version; big-endian, fixed width."""
AAD_BYTES = _AAD.size
SealedAnswer = tuple[int, Oid, int, int, int, bytes | memoryview]
"""A sealed page as a holder answered it: its pool uid, oid, index and version (as the holder
answered), its page size, and the sealed bytes."""
_packed_aad = functools.partial(_AAD.pack, AAD_TAG)
"""The associated data of checked fields (origin as `_origin_field` gives it, pool uid, three
oid words, index, version): what `page_aad` and `OriginSeal` both pack (a partial of `struct`'s
own function: no Python frame on a shipped page's path)."""


LZ4 = b"L"
SAME_FILLED = b"S"
ZSTD = b"Z"
"""The first byte of a sealed page's plaintext: how the rest is packed."""


class SealBroken(RamsterError):
    """A sealed page did not open: another key, another page's associated data, or damage."""


def page_aad(origin: str, pool_uid: int, oid: Oid, index: int, version: int) -> bytes:
    """The associated data that binds a sealed page to origin node `origin`, its pool `pool_uid`
    there, key (`oid`, `index`) and `version`: `AAD_BYTES` (120) bytes."""
    check_node_name("origin", origin)
    for field, value, high in (("pool_uid", pool_uid, U32_MAX), ("version", version, U64_MAX)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= high:
            raise InvalidArgument.field(field, value, f"an int in 0..{high}")
    words = as_oid(oid)
    return _packed_aad(_origin_field(origin), pool_uid, *words, check_index(index), version)


def _origin_field(origin: str) -> bytes:
    """The origin as the associated data holds it: `struct` would cut a longer name short, and
    two names alike in their first 63 bytes would seal alike."""
    return abbreviated(origin, MAX_ORIGIN).encode()


class Nonces:
    """The nonces of one seal: never two alike, nor alike with another seal's of the same key
    but by a chance the module's docstring bounds. `start` is where the counter starts (tests
    start it near `COUNTER_LIMIT`). Safe from several threads: a prefix and its counter are
    read together, so a thread drawing a new prefix never pairs it with another's count. Not
    across `os.fork`: a forked copy would count on from the same prefix (nodes do not fork)."""

    __slots__ = ("_state",)

    def __init__(self, start: int = 0) -> None:
        self._state = (os.urandom(PREFIX_BYTES), itertools.count(start))

    def next(self) -> bytes:
        """The next nonce: `NONCE_BYTES` bytes."""
        prefix, counter = self._state
        count = next(counter)
        if count < COUNTER_LIMIT:
            return _NONCE.pack(prefix, count)
        self._state = (os.urandom(PREFIX_BYTES), itertools.count())
        return self.next()


class PageSeal:
    """Seals and opens pages under one origin's 32-byte page key."""

    __slots__ = ("_aead", "_nonces")

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) != KEY_BYTES:
            given = f"{len(key)} bytes" if isinstance(key, bytes) else f"type {type(key).__name__}"
            raise InvalidArgument(f"page key of {given} is invalid: expected {KEY_BYTES} bytes")
        self._aead = AESGCM(key)
        self._nonces = Nonces()

    def seal(self, payload: bytes, aad: bytes) -> bytes:
        """`payload` encrypted and authenticated with `aad` (from `page_aad`)."""
        nonce = self._nonces.next()
        return nonce + self._aead.encrypt(nonce, payload, aad)

    @property
    def nonces(self) -> Nonces:
        """The nonces this seal draws from: for `OriginSeal.seal_all`'s loop, which must draw
        every nonce from them."""
        return self._nonces

    @property
    def encrypt(self) -> Callable[[bytes, bytes, bytes], bytes]:
        """The bare AES-GCM encryption of this key, (nonce, payload, aad) -> ciphertext and
        tag: for `OriginSeal.seal_all`'s loop, with a nonce of `nonces`."""
        return self._aead.encrypt

    @property
    def decrypt(self) -> Callable[[bytes | memoryview, bytes | memoryview, bytes], bytes]:
        """The bare AES-GCM decryption of this key, (nonce, ciphertext and tag, aad) ->
        payload, raising `InvalidTag`: for `OriginSeal.open_all`'s loop."""
        return self._aead.decrypt

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        """The payload `sealed` holds if it was sealed under this key with `aad`, else
        `SealBroken`."""
        if len(sealed) < OVERHEAD:
            raise SealBroken(
                f"sealed page of {len(sealed)} bytes is too short: expected at least {OVERHEAD}"
            )
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
        except InvalidTag:
            raise SealBroken(
                f"sealed page of {len(sealed)} bytes does not open: sealed under another key "
                "or for another origin, pool, key or version, or damaged"
            ) from None

    def __repr__(self) -> str:
        return "<PageSeal AES-256-GCM>"


class OriginSeal:
    """The seal on every page node `origin` ships: each sealed with its place (`PageVersion`:
    pool uid, key, version) as associated data, its encoding inside, so a holder can neither read
    a page, nor hand back another page, version or encoding in its place."""

    __slots__ = ("_origin", "_seal", "origin")

    def __init__(self, origin: str, key: bytes) -> None:
        self.origin = check_node_name("origin", origin)
        self._origin = _origin_field(origin)
        self._seal = PageSeal(key)

    def __repr__(self) -> str:
        return f"<OriginSeal {self.origin!r} AES-256-GCM>"

    def seal(self, at: PageVersion, page: PackedPage) -> bytes:
        """`page` sealed for the place `at`: `OVERHEAD` + 1 bytes more than its payload."""
        return self.seal_all(((at, page),))[0]

    def seal_all(self, pages: Iterable[tuple[PageVersion, PackedPage]]) -> list[bytes]:
        """Each page sealed for its place, as `seal` seals it: one call for a put's batch, with
        no frame per page but its nonce's (`open_all`'s twin: a shipped page's seal was five
        Python frames around the cipher's call, 0.4 µs of its 2.2)."""
        encrypt, nonce_of, origin = self._seal.encrypt, self._seal.nonces.next, self._origin
        sealed: list[bytes] = []
        for at, page in pages:
            oid = at.oid
            aad = _packed_aad(origin, at.pool_uid, oid[0], oid[1], oid[2], at.index, at.version)
            nonce = nonce_of()
            sealed.append(nonce + encrypt(nonce, _kind(page) + page.payload, aad))
        return sealed

    def seal_dictionary(self, pool_uid: int, dict_id: int, data: bytes) -> bytes:
        """Dictionary `dict_id` of pool `pool_uid` sealed for the record (etcd): `OVERHEAD`
        bytes more than its data."""
        return self._seal.seal(data, self._dictionary_aad(pool_uid, dict_id))

    def open_dictionary(self, pool_uid: int, dict_id: int, sealed: bytes) -> bytes:
        """What `seal_dictionary` sealed for dictionary `dict_id` of pool `pool_uid`; else
        `SealBroken`."""
        return self._seal.open(sealed, self._dictionary_aad(pool_uid, dict_id))

    def _dictionary_aad(self, pool_uid: int, dict_id: int) -> bytes:
        return _DICTIONARY_AAD.pack(DICTIONARY_AAD_TAG, pool_uid, dict_id) + self._origin

    def open(self, at: PageVersion, sealed: bytes, page_size: int) -> PackedPage:
        """The page `seal` sealed for the place `at`, of `page_size` bytes; `SealBroken` if
        `sealed` is anything else."""
        return _unsealed(self._seal.open(sealed, self._aad(at)), page_size)

    def open_all(self, answers: Iterable[SealedAnswer | None]) -> list[PackedPage | None]:
        """Each page of a get's `answers` as `open` gives it, None where it does not open (and
        for None): one call for a batch, with no frame per page but the page's own, and no
        copy of the sealed bytes (a memoryview slice of the answer will do)."""
        decrypt, origin = self._seal.decrypt, self._origin
        pages: list[PackedPage | None] = []
        for answer in answers:
            page = None
            if answer is not None and len(answer[5]) >= OVERHEAD:
                pool_uid, oid, index, version, page_size, sealed = answer
                aad = _packed_aad(origin, pool_uid, oid[0], oid[1], oid[2], index, version)
                try:
                    inner = decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
                    page = _unsealed(inner, page_size)
                except (InvalidTag, SealBroken):
                    pass  # the caller counts it lost, as any page that does not open
            pages.append(page)
        return pages

    def _aad(self, at: PageVersion) -> bytes:
        """`page_aad` of this origin and `at`, without its checks: a place comes from this
        node's own tree, checked when its page was put (and `struct` refuses a value out of
        its field's range). Every shipped page builds one: the checks cost as much as the
        packing."""
        oid = at.oid
        return _packed_aad(self._origin, at.pool_uid, oid[0], oid[1], oid[2], at.index, at.version)


def _unsealed(inner: bytes, page_size: int) -> PackedPage:
    """The packed page of `page_size` bytes an opened seal's plaintext `inner` holds (its
    encoding byte, then the payload); `SealBroken` for an encoding byte of none."""
    kind, payload = inner[:1], inner[1:]
    if kind == LZ4:
        return PackedPage(payload, False, page_size)
    if kind == SAME_FILLED:
        return PackedPage(payload, True, page_size)
    if kind == ZSTD:
        return PackedPage(payload, False, page_size, ZSTD_CODEC, zstd_dictionary_id(payload))
    # only a key holder could seal this: still refused
    raise SealBroken(
        f"sealed page holds encoding {kind!r}: expected an lz4 block, a zstd frame or a fill"
    )


def _kind(page: PackedPage) -> bytes:
    """The first byte of `page`'s sealed plaintext."""
    if page.same_filled:
        return SAME_FILLED
    return ZSTD if page.codec == ZSTD_CODEC else LZ4
