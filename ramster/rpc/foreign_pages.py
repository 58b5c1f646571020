"""A peer's pages and keys as a holder receives them, checked: `Peer/PutPages`, `Peer/GetPages`
and `Peer/FlushPages`, and their lean forms `PutPageBatch`, `GetPageBatch` and
`FlushPageBatch`.

Both forms run the one check of a page (`page_of`) and of a key (`foreign_key`), so a
refusal names a page ``pages[n]`` and a key ``keys[n]`` whichever form carried it; the lean form
has refusals of its own only for what packing can get wrong (arrays of other lengths, lengths
that do not add up to the data: `ramster.rpc.convert.check_entries`, `parts`). Also the
per-page answer to a get (the lean one is `ramster.wire.peer_messages.get_batch_response`). Not
here: who may call, the origin and holder epoch checks (`ramster.rpc.peer_service`), what a
holder does with the pages (`ramster.holder.foreign`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Sequence
from zlib import crc32

from ramster.api.v1 import peer_pb2, tmem_pb2
from ramster.errors import InvalidArgument
from ramster.holder.foreign import ForeignKey, ForeignPages
from ramster.page import MAX_PAGE_SIZE, MIN_PAGE_SIZE, PackedPage, check_page_size
from ramster.rpc import convert
from ramster.tmem.keys import INVALID_OID, Oid, as_oid
from ramster.trust.seal import OVERHEAD as SEAL_OVERHEAD
from ramster.wire.messages import oid_of

VERSION_LEAD_US = 3600 * 10**6
"""How far past this node's clock a peer's page version may be, in microseconds. A node's
versions start at its start time in microseconds and grow by one per put, so a real version is
near or behind its origin's clock: this hour leaves room for an origin whose clock runs ahead of
this one (NTP keeps nodes within a second) and refuses what no origin could have made. A version
far ahead would outrank every later real copy of its key, and the origin's copies of that key
would be dropped in its favour."""
VERSION_RULE = "1 up to this node's clock plus one hour, in microseconds since 1970"


def latest_version() -> int:
    """The latest version a peer's page may carry now (`VERSION_LEAD_US`)."""
    return time.time_ns() // 1000 + VERSION_LEAD_US


def checked_version(version: int, latest: int, field: str, any_version: bool = False) -> int:
    """`version` if its origin could have made it by now; 0 too where it means any version."""
    if 1 <= version <= latest or (any_version and version == 0):
        return version
    expected = f"0 (any version) or {VERSION_RULE}" if any_version else VERSION_RULE
    raise InvalidArgument.field(f"{field}.version", version, expected)


def foreign_key(pool_uid: int, oid: Oid, index: int, at: int) -> ForeignKey:
    """A key a peer names, ``keys[at]``: no reserved oid (`oid` is three words of a message,
    each a uint64 already; the field is named only in a refusal)."""
    if oid == INVALID_OID:
        as_oid(oid, f"keys[{at}].oid")  # refuses it, naming the field
    return pool_uid, oid, index


_PAGE_SIZES = frozenset(
    1 << bits for bits in range(MIN_PAGE_SIZE.bit_length() - 1, MAX_PAGE_SIZE.bit_length())
)
"""Every page size `check_page_size` takes (512..65536): a page's size is checked by a set
lookup, `check_page_size` names the field of one that is not."""


def page_of(
    at: int,
    oid: Oid,
    version: int,
    data: bytes,
    encoding: int,
    page_size: int,
    checksum: int | None,
    latest: int,
) -> PackedPage:
    """The packed page of a peer's page ``pages[at]`` once its checks pass, as strict as an
    application's, in that order: page size, checksum, data, its key's oid (three words of a
    message, each a uint64 already), a version its origin could have made (up to `latest`). A
    page without a checksum (None: a put that skips them, checked by `unchecked_puts`) must be
    sealed: its origin checks it by its tag, which a holder cannot; a packed page is checked by
    its checksum alone, here.

    Runs once per page a peer copies here: the checks that pass build no field name (the
    refusal names it), and a page size or an oid is looked at in full only if it is not the
    common one."""
    if page_size not in _PAGE_SIZES:
        check_page_size(page_size, f"pages[{at}].page_size")
    if checksum is None:
        if encoding != tmem_pb2.PAGE_ENCODING_SEALED:
            raise InvalidArgument(
                f"pages[{at}].checksum is missing (skip_checksums) for a page of encoding "
                f"{_encoding_name(encoding)}: expected PAGE_ENCODING_SEALED, the only pages that "
                "may come without one",
                f"pages[{at}].checksum",
            )
    elif crc32(data) != checksum:
        raise InvalidArgument(
            f"pages[{at}].checksum {checksum:#010x} does not match its data "
            f"({crc32(data):#010x}): the page was damaged on the way",
            f"pages[{at}].checksum",
        )
    # The page size a peer's page states is its length: the one the holder's pool is made for.
    if encoding == tmem_pb2.PAGE_ENCODING_SEALED:
        packed = _sealed_page(data, page_size, at)
    else:
        # A zstd frame made with one of the origin's dictionaries: only its header can be
        # checked here (`check_packed`); its checksum still guards it for the origin.
        field = f"pages[{at}]"
        packed = convert.packed_page(
            data, encoding, page_size, page_size, field, convert.PEER_ENCODINGS, None
        )
    if oid == INVALID_OID:
        as_oid(oid, f"pages[{at}].oid")  # refuses it, naming the field
    if not 1 <= version <= latest:
        checked_version(version, latest, f"pages[{at}]")  # refuses it, naming the field
    return packed


def pages_of(pages: Sequence[peer_pb2.RemotePage]) -> ForeignPages:
    """The pages of a `PeerPutRequest` as columns, as `pages_of_batch` reads a lean put, each
    page checked by `page_of`."""
    convert.batch_size("pages", len(pages))
    latest = latest_version()
    keys = [(oid_of(p.oid), p.index) for p in pages]
    versions = [p.version for p in pages]
    packed = [
        page_of(i, oid, p.version, p.data, p.encoding, p.page_size, p.checksum, latest)
        for i, (p, (oid, _)) in enumerate(zip(pages, keys, strict=True))
    ]
    return ForeignPages(
        [p.pool for p in pages], [p.persistent for p in pages], keys, versions, packed
    )


def unchecked_puts(skip_checksums: bool, proven_node: bool) -> bool:
    """Whether a lean put's pages come without checksums (its `skip_checksums`): only from a
    caller that proved it is a node (`proven_node`: over TLS, whose records guard the pages on
    the way as a CRC-32 would), since nothing else would tell a holder that a page was damaged
    on a plaintext connection before it acknowledged it."""
    if skip_checksums and not proven_node:
        raise InvalidArgument(
            "skip_checksums is true on a connection that proves no node (no TLS): expected "
            "false, a checksum for each page",
            "skip_checksums",
        )
    return skip_checksums


def pages_of_batch(request: peer_pb2.PeerPutBatchRequest, unchecked: bool = False) -> ForeignPages:
    """The pages of a `PeerPutBatchRequest` as columns, its arrays checked to have one entry per
    key (no checksums if `unchecked`: see `unchecked_puts`), each page a slice of `data` checked
    as a `RemotePage` is (`page_of`)."""
    keys = convert.keys_of_batch(request.keys)
    count = len(keys)
    arrays = (
        ("pool_uids", request.pool_uids),
        ("persistent", request.persistent),
        ("versions", request.versions),
        ("encodings", request.encodings),
        ("page_sizes", request.page_sizes),
    )
    for name, array in arrays:
        convert.check_entries(name, len(array), count)
    checksums: Iterable[int | None] = request.checksums
    if unchecked:
        if request.checksums:
            raise InvalidArgument(
                f"checksums has {len(request.checksums)} entries with skip_checksums: "
                "expected none",
                "checksums",
            )
        checksums = itertools.repeat(None, count)
    else:
        convert.check_entries("checksums", len(request.checksums), count)
    data = request.data
    cuts = convert.parts(data, request.lengths, count)
    latest = latest_version()
    versions = list(request.versions)
    rows = zip(keys, versions, cuts, request.encodings, request.page_sizes, checksums, strict=True)
    pages = [
        page_of(i, oid, version, data[start:end], encoding, page_size, checksum, latest)
        for i, ((oid, _), version, (start, end), encoding, page_size, checksum) in enumerate(rows)
    ]
    return ForeignPages(list(request.pool_uids), list(request.persistent), keys, versions, pages)


def keys_of(keys: Sequence[peer_pb2.RemoteKey]) -> list[ForeignKey]:
    """The keys of a `PeerGetRequest`, each checked by `foreign_key`."""
    convert.batch_size("keys", len(keys))
    return [foreign_key(k.pool, oid_of(k.oid), k.index, i) for i, k in enumerate(keys)]


def keys_of_batch(request: peer_pb2.PeerGetBatchRequest) -> list[ForeignKey]:
    """The keys of a `PeerGetBatchRequest`, one pool uid per key, each checked by `foreign_key`."""
    keys = convert.keys_of_batch(request.keys)
    convert.check_entries("pool_uids", len(request.pool_uids), len(keys))
    return [
        foreign_key(uid, oid, index, i)
        for i, (uid, (oid, index)) in enumerate(zip(request.pool_uids, keys, strict=True))
    ]


def flush_keys_of(request: peer_pb2.PeerFlushPagesRequest) -> list[tuple[int, Oid, int, int]]:
    """The (pool uid, oid, index, version) copies a `PeerFlushPagesRequest` flushes, each key
    checked by `foreign_key`, each version one its origin could have made, or 0 (any)."""
    convert.batch_size("keys", len(request.keys))
    latest = latest_version()
    return [
        _flush_key(i, k.pool, oid_of(k.oid), k.index, k.version, latest)
        for i, k in enumerate(request.keys)
    ]


def flush_keys_of_batch(
    request: peer_pb2.PeerFlushPageBatchRequest,
) -> list[tuple[int, Oid, int, int]]:
    """`flush_keys_of` of the lean form: its arrays checked to have one entry per key, each key
    and version checked as there."""
    keys = convert.keys_of_batch(request.keys)
    count = len(keys)
    convert.check_entries("pool_uids", len(request.pool_uids), count)
    convert.check_entries("versions", len(request.versions), count)
    latest = latest_version()
    rows = zip(request.pool_uids, keys, request.versions, strict=True)
    return [
        _flush_key(i, uid, oid, index, version, latest)
        for i, (uid, (oid, index), version) in enumerate(rows)
    ]


def _flush_key(
    at: int, pool_uid: int, oid: Oid, index: int, version: int, latest: int
) -> tuple[int, Oid, int, int]:
    """The copy ``keys[at]`` flushes, its oid checked before its version (any version: 0)."""
    key = foreign_key(pool_uid, oid, index, at)
    if version > latest:
        checked_version(version, latest, f"keys[{at}]", any_version=True)  # refuses it
    return (*key, version)


def _encoding_name(encoding: int) -> str:
    """`encoding`'s name in the proto, or its number if it has none."""
    known = encoding in tmem_pb2.PageEncoding.values()
    return tmem_pb2.PageEncoding.Name(encoding) if known else str(encoding)


def _sealed_page(data: bytes, page_size: int, at: int) -> PackedPage:
    """A page its origin sealed: kept as it came, since only the origin can open it; its length
    is all a holder can check (an encoding byte and a packed page of at most `page_size` bytes,
    and the seal's nonce and tag)."""
    longest = page_size + 1 + SEAL_OVERHEAD
    if not 1 + SEAL_OVERHEAD < len(data) <= longest:
        raise InvalidArgument(
            f"pages[{at}].data of {len(data)} bytes is no sealed page of {page_size} bytes: "
            f"expected {2 + SEAL_OVERHEAD} to {longest} bytes",
            f"pages[{at}].data",
        )
    return PackedPage(data, False, page_size)
