"""`Client`: raw tmem and admin calls to one node, from asyncio code.

Arguments are checked here, before any RPC, with the core's own checks (`ramster.tmem.keys`).
Concurrent single-page `put`, `get` and `flush_page` calls are coalesced into batched RPCs
(`ramster.client._coalesce`); `put_many` and `get_many` split batches larger than one message
holds into several RPCs, a few in flight at once (`ramster.client._pipeline`). Once the client
has a pool it keeps its session with the node (`ramster.client._session`) until it is closed,
and every call on a pool it made names the pool's uid: a pool the node destroyed meanwhile (its
session expired) is NOT_FOUND, never a newer pool that got its id. Not here: the wire
(`ramster.client._transport`), the blocking surface (`ramster.client._sync`), the frontends
(`ramster.client._frontends`).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncGenerator, Iterable, Sequence
from types import TracebackType
from typing import Any

from ramster.client._coalesce import Coalescer
from ramster.client._config import ClientConfig, default_client_name
from ramster.client._pipeline import in_chunks
from ramster.client._session import KeepAlive
from ramster.client._transport import MAX_DRAIN_WAIT, Key, Page, Transport
from ramster.errors import DictionaryRetired, InvalidArgument
from ramster.page import (
    DEFAULT_PAGE_SIZE,
    LZ4_CODEC,
    ZSTD,
    Codec,
    Dictionaries,
    caller_codec,
    check_page_length,
    check_page_size,
)
from ramster.state import ExportStatus, NodeState
from ramster.tmem.keys import OidLike, as_oid, check_index
from ramster.tmem.quota import Quotas, Usage
from ramster.wire.bearer import load_token
from ramster.wire.tls import TLS

log = logging.getLogger("ramster.client")

I32_MAX = 2**31 - 1
"""Pool ids travel as int32."""


class Client:
    """A client of the node at `target` (``HOST:PORT`` or ``unix:///path``), for use in one
    event loop: ``async with Client("127.0.0.1:7470") as client: ...``.

    Constructing it does no I/O; the channel opens on the first call. Every call ends within
    `timeout` seconds or raises `DeadlineExceeded`; only `RamsterError` subclasses are raised.
    client_name: whose pools these are (default: unique to this client).
    max_batch: the most concurrent single-page calls coalesced into one RPC (default 64).
    tls: `TLS` (the cluster CA, this client's certificate and key) for a node that serves TLS.
    token: a bearer token proving this client's identity, or the path of its ``.token`` file
        (``ramster certs issue DIR client NAME --token``); with a certificate, both must name
        the same identity.
    """

    def __init__(
        self,
        target: str,
        client_name: str | None = None,
        timeout: float = 5.0,
        max_batch: int = 64,
        *,
        tls: TLS | None = None,
        token: str | os.PathLike[str] | None = None,
    ) -> None:
        name = client_name if client_name is not None else default_client_name()
        loaded = load_token(token) if token is not None else None
        self.config = ClientConfig(target, name, timeout, max_batch, tls, loaded)
        self._transport = Transport(self.config)
        self._page_sizes: dict[int, int] = {}
        self._uids: dict[int, int] = {}
        self._codecs: dict[int, Codec] = {}
        """Each pool's codec: what this client packs its pages with."""
        self._dictionaries: dict[int, Dictionaries] = {}
        """The dictionaries of the pools whose pages the node packs with one, as fetched."""
        self._packing: dict[int, int | None] = {}
        """How the node last said it would have the next pages of each of those pools: None
        raw (it samples them), else packed with the dictionary of this id (0: none)."""
        """The uid of each pool this client made, by id (a pool it did not make: unchecked)."""
        self._keepalive = KeepAlive(self._transport.keep_alive, name)
        split_on = (InvalidArgument,)
        self._puts = Coalescer(self._put_pages, max_batch, split_on)
        self._gets = Coalescer(self._get_pages, max_batch, split_on)
        self._flushes = Coalescer(self._flush_pages, max_batch, split_on)

    def __repr__(self) -> str:
        return (
            f"<Client {self.config.target} client={self.config.client_name!r} "
            f"{'tls ' if self.config.tls is not None else ''}"
            f"{self._transport.state} rpcs={self.rpc_count}>"
        )

    @property
    def rpc_count(self) -> int:
        """RPCs sent so far: coalesced calls share one."""
        return self._transport.rpc_count

    @property
    def rpcs_in_flight(self) -> int:
        """RPCs sent and not answered yet."""
        return self._transport.in_flight

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Send what is waiting to be coalesced, wait for the answers, stop keeping the
        session, close the channel."""
        for coalescer in (self._puts, self._gets, self._flushes):
            await coalescer.drain()
        await self._keepalive.stop()
        await self._transport.close()

    # -- pools -------------------------------------------------------------------------------

    async def new_pool(
        self,
        persistent: bool = False,
        shared_uuid: uuid.UUID | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        codec: str | None = None,
    ) -> int:
        """A new pool of this client (or the shared pool of `shared_uuid`); its id. `codec`:
        how its pages are packed, ``lz4``, ``zstd`` or ``zstd:LEVEL``; None: the node's
        default."""
        check_page_size(page_size)
        asked = caller_codec(codec)
        if not isinstance(persistent, bool):
            raise InvalidArgument.field("persistent", persistent, "True or False")
        if shared_uuid is not None and not isinstance(shared_uuid, uuid.UUID):
            raise InvalidArgument.field("shared_uuid", shared_uuid, "a uuid.UUID or None")
        pool, uid, chosen = await self._transport.new_pool(
            persistent, shared_uuid, page_size, asked
        )
        if self._uids.get(pool, uid) != uid:
            # Calls holding the id from before would now name the new pool's uid.
            log.warning(
                "client %s: the node gave pool id %d again, so the earlier pool %d is gone (the "
                "client was unseen past its lease or grace): drop every use of the earlier one",
                self.config.client_name,
                pool,
                pool,
            )
        self._page_sizes[pool] = page_size
        self._uids[pool] = uid
        # A zstd pool's pages go raw while the node samples them to train the pool's
        # dictionary (each put's answer says), then packed with it; the node hands it to this
        # client (the pool's owner), to pack and read pages with.
        self._codecs[pool] = chosen
        if chosen.name == ZSTD:
            self._dictionaries[pool], self._packing[pool] = {}, None
        else:
            self._dictionaries.pop(pool, None)
            self._packing.pop(pool, None)
        self._keepalive.start()
        return pool

    async def destroy_pool(self, pool: int) -> None:
        """Give the pool up; its pages are flushed once no other client shares it."""
        await self._transport.destroy_pool(_pool(pool), self._uids.get(pool, 0))
        self._page_sizes.pop(pool, None)
        self._uids.pop(pool, None)
        self._codecs.pop(pool, None)
        self._dictionaries.pop(pool, None)
        self._packing.pop(pool, None)

    # -- single pages (coalesced) ------------------------------------------------------------

    async def put(self, pool: int, oid: OidLike, index: int, data: bytes) -> bool:
        """Store a page; False if the node refused it (a refused duplicate put drops the old
        page too)."""
        return await self._puts.submit(
            _pool(pool), _page(self._page_sizes.get(pool), oid, index, data)
        )

    async def get(
        self, pool: int, oid: OidLike, index: int, free: bool | None = None
    ) -> bytes | None:
        """The page, or None. `free`: None follows the pool's rule (private ephemeral pools
        free on get), True is get-and-free, False keeps the page."""
        return await self._gets.submit((_pool(pool), _free(free)), _key(oid, index))

    async def flush_page(self, pool: int, oid: OidLike, index: int) -> bool:
        """Remove a page; False if there was none."""
        return await self._flushes.submit(_pool(pool), _key(oid, index))

    async def flush_object(self, pool: int, oid: OidLike) -> bool:
        """Remove every page of an object; False if it had none."""
        uid = self._uids.get(_pool(pool), 0)
        (flushed,) = await self._transport.flush_objects(pool, uid, [as_oid(oid)])
        return flushed

    # -- batches -----------------------------------------------------------------------------

    async def put_many(self, pool: int, items: Iterable[tuple[OidLike, int, bytes]]) -> list[bool]:
        """Store (oid, index, data) pages; one result per page, in order."""
        _pool(pool)
        known = self._page_sizes.get(pool)
        pages = [_page(known, *_fields(item, 3, f"items[{i}]")) for i, item in enumerate(items)]
        page_size = max((len(data) for _, _, data in pages), default=DEFAULT_PAGE_SIZE)
        return await in_chunks(pages, page_size, lambda chunk: self._put_pages(pool, chunk))

    async def get_many(
        self, pool: int, keys: Iterable[tuple[OidLike, int]], free: bool | None = None
    ) -> list[bytes | None]:
        """The page (or None) of each (oid, index), in order; `free` as for `get`."""
        _pool(pool)
        checked = [_key(*_fields(key, 2, f"keys[{i}]")) for i, key in enumerate(keys)]
        mode = _free(free)
        page_size = self._page_sizes.get(pool, DEFAULT_PAGE_SIZE)
        return await in_chunks(
            checked, page_size, lambda chunk: self._get_pages((pool, mode), chunk)
        )

    # -- admin -------------------------------------------------------------------------------

    async def stats(self) -> dict[str, int]:
        """Every counter of the node, by kernel name (docs/design.md §10)."""
        _, counters = await self._transport.get_stats()
        return counters

    async def state(self) -> NodeState:
        """The node's state now."""
        state, _ = await self._transport.get_stats()
        return state

    def watch_state(self) -> AsyncGenerator[NodeState, None]:
        """The node's state now and after every change, until the node stops; no deadline."""
        return self._transport.watch_state()

    async def params(self) -> dict[str, str]:
        """The node's module params (``zcache``, ``ramster``)."""
        return await self._transport.get_params()

    async def set_param(self, name: str, value: str) -> dict[str, str]:
        """Set a module param on the node; every param after the change."""
        for field, text in (("name", name), ("value", value)):
            if not isinstance(text, str):
                raise InvalidArgument.field(field, text, "a str")
        return await self._transport.set_param(name, value)

    async def drain(self, timeout: float = 0.0) -> tuple[bool, int]:
        """Drain the node: it takes no more pages for peers and waits up to `timeout` seconds
        (0: its --drain-timeout) for them to move theirs off. (drained, foreign pages left)."""
        if not isinstance(timeout, int | float) or not 0 <= timeout <= MAX_DRAIN_WAIT:
            raise InvalidArgument.field(
                "timeout", timeout, f"seconds in 0..{MAX_DRAIN_WAIT:.0f} (0: the node's own)"
            )
        return await self._transport.drain(timeout)

    async def forget_node(self, name: str) -> int:
        """Decommission the node called `name`, which must have left the cluster: every node
        drops the pages it holds for it and the flushes queued for it. Its (retired) number."""
        if not isinstance(name, str):
            raise InvalidArgument.field("name", name, "a str")
        return await self._transport.forget_node(name)

    async def undrain(self) -> bool:
        """Undo a drain: the node takes pages for peers again. Whether it was draining;
        `FailedPrecondition` if it is shutting down."""
        return await self._transport.undrain()

    async def set_quota(self, identity: str, nbytes: int) -> Quotas:
        """Hold client identity `identity` (``role:name``) to `nbytes` bytes of pages on the
        node, whatever its ``client_quota`` (0: no quota); every quota after the change."""
        if not isinstance(identity, str):
            raise InvalidArgument.field("identity", identity, "a str")
        if not isinstance(nbytes, int) or isinstance(nbytes, bool) or nbytes < 0:
            raise InvalidArgument.field("nbytes", nbytes, "an int >= 0")
        return await self._transport.set_quota(identity, nbytes)

    async def unset_quota(self, identity: str) -> tuple[bool, Quotas]:
        """Hold `identity` to the node's ``client_quota`` again: (whether it had a quota of its
        own, every quota after the change)."""
        if not isinstance(identity, str):
            raise InvalidArgument.field("identity", identity, "a str")
        return await self._transport.unset_quota(identity)

    async def quotas(self) -> Quotas:
        """The node's ``client_quota`` and the quota of every identity that has its own."""
        return await self._transport.get_quotas()

    async def clients(self) -> list[Usage]:
        """What the pages of each client identity with pools on the node take, by identity."""
        return await self._transport.get_clients()

    async def create_export(self, name: str, size: int, codec: str | None = None) -> ExportStatus:
        """A new NBD export of the caller's identity: a block device of `size` bytes (a multiple
        of 4096) that NBD clients reach as `name` on the node's ``--nbd`` sockets; its pages
        packed with `codec` as `new_pool`'s."""
        if not isinstance(name, str):
            raise InvalidArgument.field("name", name, "a str")
        if not isinstance(size, int) or isinstance(size, bool) or not 0 < size < 2**64:
            raise InvalidArgument.field("size", size, "bytes, an int > 0")
        return await self._transport.create_export(name, size, caller_codec(codec))

    async def list_exports(self) -> list[ExportStatus]:
        """The NBD exports of the caller's identity on the node, by name."""
        return await self._transport.list_exports()

    async def delete_export(self, name: str) -> int:
        """Delete an NBD export of the caller's and every page of it; the pages flushed."""
        if not isinstance(name, str):
            raise InvalidArgument.field("name", name, "a str")
        return await self._transport.delete_export(name)

    # -- internals ---------------------------------------------------------------------------

    async def _put_pages(self, pool: int, pages: Sequence[Page]) -> list[bool]:
        uid, codec = self._uids.get(pool, 0), self._codecs.get(pool, LZ4_CODEC)
        dictionaries = self._dictionaries.get(pool)
        if dictionaries is None:  # packed with its codec alone, whatever the node answers
            stored, _ = await self._transport.put_pages(pool, uid, pages, codec)
            return stored
        packing = self._packing.get(pool)
        dictionary = dictionaries.get(packing) if packing else None
        try:
            stored, advice = await self._transport.put_pages(
                pool, uid, pages, None if packing is None else codec, dictionary
            )
        except DictionaryRetired:  # the node retrained since its advice: none was stored
            stored, advice = await self._transport.put_pages(pool, uid, pages, None)
        if advice and advice not in dictionaries:
            fetched = await self._transport.dictionary(pool, uid, advice)
            if fetched is None:  # gone meanwhile: the node packs the pages, as it knows best
                advice = None
            else:
                dictionaries[advice] = fetched
        if pool in self._packing:  # unless the pool was destroyed meanwhile
            self._packing[pool] = advice
        return stored

    async def _get_pages(
        self, key: tuple[int, bool | None], keys: Sequence[Key]
    ) -> list[bytes | None]:
        pool, free = key
        uid, dictionaries = self._uids.get(pool, 0), self._dictionaries.get(pool)
        return await self._transport.get_pages(pool, uid, keys, free, dictionaries)

    async def _flush_pages(self, pool: int, keys: Sequence[Key]) -> list[bool]:
        return await self._transport.flush_pages(pool, self._uids.get(pool, 0), keys)


def _pool(pool: int) -> int:
    if not isinstance(pool, int) or isinstance(pool, bool) or not 0 <= pool <= I32_MAX:
        raise InvalidArgument.field("pool", pool, f"an int in 0..{I32_MAX}")
    return pool


def _fields(item: tuple[Any, ...], count: int, field: str) -> tuple[Any, ...]:
    """`item` of a batch, if it has `count` fields, followed by its name for messages."""
    if not isinstance(item, tuple) or len(item) != count:
        shape = "(oid, index, data)" if count == 3 else "(oid, index)"
        raise InvalidArgument(f"{field} is invalid: expected a tuple {shape}")
    return (*item, field)


def _key(oid: OidLike, index: int, field: str = "") -> Key:
    prefix = f"{field}." if field else ""
    return as_oid(oid, f"{prefix}oid"), check_index(index, f"{prefix}index")


def _page(page_size: int | None, oid: OidLike, index: int, data: bytes, field: str = "") -> Page:
    """A page to put, checked before it is packed: packed, a uniform page is one fill byte and
    would no longer show its length. `page_size` None: a pool this client did not create, whose
    page size only the node knows (it checks the length the packed page states)."""
    key_oid, key_index = _key(oid, index, field)
    name = f"{field}.data" if field else "data"
    if not isinstance(data, bytes):
        raise InvalidArgument(f"{name} of type {type(data).__name__} is invalid: expected bytes")
    if page_size is not None:
        check_page_length(len(data), page_size, name)
    return key_oid, key_index, data


def _free(free: bool | None) -> bool | None:
    if free is not None and not isinstance(free, bool):
        raise InvalidArgument.field("free", free, "None, True or False")
    return free
