"""The client's seam to the wire: the only client module that knows gRPC or generated code.

One grpc.aio channel per client, opened on first use inside the running loop. Each method is one
RPC taking and returning core values (oid tuples, bytes, `NodeState`); every call carries the
client's token if it has one (`ramster.wire.bearer`), every unary call the client's deadline,
and a failed call is raised as the `RamsterError` of its status (`ramster.wire.calls`). Not
here: validation, batching and coalescing (`ramster.client._async`).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncGenerator, Sequence

import grpc

from ramster.api.v1 import admin_pb2, tmem_pb2
from ramster.client._config import ClientConfig
from ramster.errors import FailedPrecondition, InternalError, NotFound
from ramster.page import (
    LZ4_CODEC,
    NO_DICTIONARIES,
    Codec,
    Dictionaries,
    PackedPage,
    UnknownDictionary,
    codec_of,
    pack_page,
    unpack_page,
)
from ramster.page_dictionary import PageDictionary
from ramster.state import ExportStatus, NodeState
from ramster.tmem.keys import Oid
from ramster.tmem.quota import Quotas, Usage
from ramster.wire.batches import key_batch, spans
from ramster.wire.bearer import metadata_of
from ramster.wire.calls import M, Message, stream_messages, unary_call
from ramster.wire.limits import MESSAGE_SIZE_OPTIONS, OWN_CONNECTIONS
from ramster.wire.messages import (
    export_of,
    key_messages,
    node_state_of,
    oid_message,
    packed_encoding,
    packed_of,
    quotas_of,
    usage_of,
)

CHANNEL_OPTIONS = (
    *MESSAGE_SIZE_OPTIONS,
    *OWN_CONNECTIONS,
    # gRPC's default reconnect backoff grows to 120 s; a node back after a restart must be
    # found again within the frontends' own backoff (at most 2 s).
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
)

GET_MODE_OF_FREE = {
    None: tmem_pb2.GET_MODE_UNSPECIFIED,
    True: tmem_pb2.GET_MODE_FREE,
    False: tmem_pb2.GET_MODE_KEEP,
}

Page = tuple[Oid, int, bytes]
Key = tuple[Oid, int]


class Transport:
    """RPCs to the node of `config`, as client `config.client_name`; `rpc_count` counts them,
    `in_flight` those of them not answered yet."""

    def __init__(self, config: ClientConfig) -> None:
        self._config = config
        self._channel: grpc.aio.Channel | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._metadata = metadata_of(config.token)
        self.rpc_count = 0
        self.in_flight = 0

    @property
    def state(self) -> str:
        if self._closed:
            return "closed"
        return "idle" if self._channel is None else "open"

    async def close(self) -> None:
        """Close the channel: calls in flight end as `Unavailable`, later ones are refused."""
        self._closed = True
        if self._channel is not None:
            channel, self._channel = self._channel, None
            await channel.close(None)

    # -- Tmem --------------------------------------------------------------------------------

    async def new_pool(
        self,
        persistent: bool,
        shared_uuid: uuid.UUID | None,
        page_size: int,
        codec: Codec | None = None,
    ) -> tuple[int, int, Codec]:
        """The new pool's id, uid (the uid names it and no later pool of that id) and codec
        (`codec`, None: the node's default)."""
        request = tmem_pb2.NewPoolRequest(
            client=self._config.client_name,
            persistent=persistent,
            shared_uuid=shared_uuid.bytes if shared_uuid is not None else b"",
            page_size=page_size,
            codec=codec.name if codec is not None else "",
            codec_level=codec.level if codec is not None else 0,
        )
        response = await self._unary("Tmem/NewPool", request, tmem_pb2.NewPoolResponse)
        # A node from before codecs answers none: its pools are lz4.
        chosen = codec_of(response.codec, response.codec_level) if response.codec else LZ4_CODEC
        return response.pool_id, response.pool_uid, chosen

    async def destroy_pool(self, pool: int, uid: int) -> int:
        request = tmem_pb2.DestroyPoolRequest(
            client=self._config.client_name, pool_id=pool, pool_uid=uid
        )
        response = await self._unary("Tmem/DestroyPool", request, tmem_pb2.DestroyPoolResponse)
        return response.pages_flushed

    async def put_pages(
        self,
        pool: int,
        uid: int,
        pages: Sequence[Page],
        codec: Codec | None = LZ4_CODEC,
        dictionary: PageDictionary | None = None,
    ) -> tuple[list[bool], int | None]:
        """Pages travel packed: compressed here with the pool's `codec` (zstd: with
        `dictionary`, if any), once, and stored by the node as they arrive, in the lean batch
        form (`ramster.wire.batches`); `codec` None: raw, for the node to pack. `uid` (0:
        unchecked) must still name the pool, here as in every call on a pool. Whether each
        page was stored, and how the node would have the pool's next pages: None raw, else
        packed with the dictionary of this id (0: none)."""
        raw = tmem_pb2.PAGE_ENCODING_UNSPECIFIED
        packed = [
            (data, raw) if codec is None else _packed(data, codec, dictionary)
            for _, _, data in pages
        ]
        request = tmem_pb2.PutPageBatchRequest(
            client=self._config.client_name,
            pool_id=pool,
            pool_uid=uid,
            keys=key_batch([(oid, index) for oid, index, _ in pages]),
            data=b"".join(payload for payload, _ in packed),
            lengths=[len(payload) for payload, _ in packed],
            encodings=[encoding for _, encoding in packed],
            # The lengths stated for the node to check: one fill byte does not show it.
            page_lengths=[len(data) for _, _, data in pages],
        )
        response = await self._unary("Tmem/PutPageBatch", request, tmem_pb2.PutPageBatchResponse)
        _check_count("Tmem/PutPageBatch", len(response.results), len(pages))
        stored = [status == tmem_pb2.PUT_STATUS_STORED for status in response.results]
        return stored, response.pack_dictionary if response.pack else None

    async def get_pages(
        self,
        pool: int,
        uid: int,
        keys: Sequence[Key],
        free: bool | None,
        dictionaries: Dictionaries | None = None,
    ) -> list[bytes | None]:
        """The pages of `keys`, None for a miss. With `dictionaries` (the pool's, as this client
        knows them), pages packed with one of the pool's dictionaries come packed: one not known
        yet is fetched once and kept there; a page whose dictionary the node no longer has is
        lost, a miss."""
        request = tmem_pb2.GetPageBatchRequest(
            client=self._config.client_name,
            pool_id=pool,
            pool_uid=uid,
            keys=key_batch(keys),
            mode=GET_MODE_OF_FREE[free],
            dictionaries=dictionaries is not None,
        )
        response = await self._unary("Tmem/GetPageBatch", request, tmem_pb2.GetPageBatchResponse)
        for field in (response.lengths, response.encodings):
            _check_count("Tmem/GetPageBatch", len(field), len(keys))
        data, size = response.data, response.page_size
        if sum(response.lengths) != len(data):
            raise InternalError(
                f"Tmem/GetPageBatch answered lengths adding up to {sum(response.lengths)} "
                f"bytes and {len(data)} bytes of data"
            )
        cut = zip(spans(response.lengths), response.encodings, strict=True)
        pages = [
            None if end == start else _packed_page(data[start:end], encoding, size)
            for (start, end), encoding in cut
        ]
        known = dictionaries if dictionaries is not None else NO_DICTIONARIES
        named = {p.dictionary for p in pages if isinstance(p, PackedPage) and p.dictionary}
        for dict_id in named - set(known):  # 0 names none: a plain frame asks for nothing
            if dictionaries is not None:  # else the node answered none: unknown, lost below
                fetched = await self.dictionary(pool, uid, dict_id)
                if fetched is not None:
                    dictionaries[dict_id] = fetched
        return [
            page if not isinstance(page, PackedPage) else _unpacked(page, known) for page in pages
        ]

    async def dictionary(self, pool: int, uid: int, dict_id: int) -> PageDictionary | None:
        """Dictionary `dict_id` of the pool; None if the node has it no more."""
        request = tmem_pb2.GetDictionaryRequest(
            client=self._config.client_name, pool_id=pool, pool_uid=uid, dictionary=dict_id
        )
        try:
            response = await self._unary(
                "Tmem/GetDictionary", request, tmem_pb2.GetDictionaryResponse
            )
        except NotFound:
            return None
        dictionary = PageDictionary(response.dictionary)
        if dictionary.dict_id != dict_id:
            raise InternalError(
                f"Tmem/GetDictionary answered dictionary {dictionary.dict_id} for {dict_id}"
            )
        return dictionary

    async def flush_pages(self, pool: int, uid: int, keys: Sequence[Key]) -> list[bool]:
        request = tmem_pb2.FlushPagesRequest(
            client=self._config.client_name, pool_id=pool, pool_uid=uid, keys=key_messages(keys)
        )
        response = await self._unary("Tmem/FlushPages", request, tmem_pb2.FlushPagesResponse)
        _check_count("Tmem/FlushPages", len(response.flushed), len(keys))
        return list(response.flushed)

    async def flush_objects(self, pool: int, uid: int, oids: Sequence[Oid]) -> list[bool]:
        request = tmem_pb2.FlushObjectsRequest(
            client=self._config.client_name,
            pool_id=pool,
            pool_uid=uid,
            oids=[oid_message(oid) for oid in oids],
        )
        response = await self._unary("Tmem/FlushObjects", request, tmem_pb2.FlushObjectsResponse)
        _check_count("Tmem/FlushObjects", len(response.flushed), len(oids))
        return list(response.flushed)

    async def keep_alive(self) -> tuple[int, int]:
        """Keep this client's session: (lease, grace) seconds the node keeps its ephemeral,
        then its persistent pools while it is unseen. Not counted in `rpc_count`, which counts
        the calls made for the caller."""
        request = tmem_pb2.KeepAliveRequest(client=self._config.client_name)
        response = await unary_call(
            self._open(),
            "Tmem/KeepAlive",
            request,
            tmem_pb2.KeepAliveResponse,
            self._config.timeout,
            self._metadata,
        )
        return response.lease_seconds, response.grace_seconds

    # -- Admin -------------------------------------------------------------------------------

    async def get_stats(self) -> tuple[NodeState, dict[str, int]]:
        request = admin_pb2.GetStatsRequest()
        response = await self._unary("Admin/GetStats", request, admin_pb2.GetStatsResponse)
        return node_state_of(response.state), dict(response.counters)

    async def get_params(self) -> dict[str, str]:
        request = admin_pb2.GetParamsRequest()
        response = await self._unary("Admin/GetParams", request, admin_pb2.GetParamsResponse)
        return dict(response.params)

    async def set_param(self, name: str, value: str) -> dict[str, str]:
        request = admin_pb2.SetParamRequest(name=name, value=value)
        response = await self._unary("Admin/SetParam", request, admin_pb2.SetParamResponse)
        return dict(response.params)

    async def drain(self, timeout: float) -> tuple[bool, int]:
        """Ask the node to drain for up to `timeout` seconds (0: its own drain timeout); the
        call waits that long and a little more."""
        request = admin_pb2.DrainRequest(timeout_seconds=timeout)
        self.rpc_count += 1
        response = await unary_call(
            self._open(),
            "Admin/Drain",
            request,
            admin_pb2.DrainResponse,
            (timeout or MAX_DRAIN_WAIT) + self._config.timeout,
            self._metadata,
        )
        return response.drained, response.pages_left

    async def forget_node(self, name: str) -> int:
        request = admin_pb2.ForgetNodeRequest(name=name)
        response = await self._unary("Admin/ForgetNode", request, admin_pb2.ForgetNodeResponse)
        return response.node_number

    async def undrain(self) -> bool:
        request = admin_pb2.UndrainRequest()
        response = await self._unary("Admin/Undrain", request, admin_pb2.UndrainResponse)
        return response.was_draining

    async def set_quota(self, identity: str, nbytes: int) -> Quotas:
        request = admin_pb2.SetQuotaRequest(identity=identity, quota_bytes=nbytes)
        response = await self._unary("Admin/SetQuota", request, admin_pb2.SetQuotaResponse)
        return quotas_of(response.quotas)

    async def unset_quota(self, identity: str) -> tuple[bool, Quotas]:
        request = admin_pb2.UnsetQuotaRequest(identity=identity)
        response = await self._unary("Admin/UnsetQuota", request, admin_pb2.UnsetQuotaResponse)
        return response.was_set, quotas_of(response.quotas)

    async def get_quotas(self) -> Quotas:
        request = admin_pb2.GetQuotasRequest()
        response = await self._unary("Admin/GetQuotas", request, admin_pb2.GetQuotasResponse)
        return quotas_of(response.quotas)

    async def get_clients(self) -> list[Usage]:
        request = admin_pb2.GetClientsRequest()
        response = await self._unary("Admin/GetClients", request, admin_pb2.GetClientsResponse)
        return [usage_of(usage) for usage in response.clients]

    async def create_export(self, name: str, size: int, codec: Codec | None = None) -> ExportStatus:
        request = admin_pb2.CreateExportRequest(
            name=name,
            size=size,
            codec=codec.name if codec is not None else "",
            codec_level=codec.level if codec is not None else 0,
        )
        response = await self._unary("Admin/CreateExport", request, admin_pb2.CreateExportResponse)
        return export_of(response.export)

    async def list_exports(self) -> list[ExportStatus]:
        request = admin_pb2.ListExportsRequest()
        response = await self._unary("Admin/ListExports", request, admin_pb2.ListExportsResponse)
        return [export_of(export) for export in response.exports]

    async def delete_export(self, name: str) -> int:
        request = admin_pb2.DeleteExportRequest(name=name)
        response = await self._unary("Admin/DeleteExport", request, admin_pb2.DeleteExportResponse)
        return response.pages_flushed

    async def watch_state(self) -> AsyncGenerator[NodeState, None]:
        """The node's state now and on every change, until the node ends the stream. Unlike the
        unary calls it has no deadline: it is meant to stay open."""
        states = stream_messages(
            self._open(),
            "Admin/WatchState",
            admin_pb2.WatchStateRequest(),
            admin_pb2.NodeState,
            None,
            self._metadata,
        )
        self.rpc_count += 1
        async with contextlib.aclosing(states):
            async for message in states:
                yield node_state_of(message)

    # -- internals ---------------------------------------------------------------------------

    async def _unary(self, method: str, request: Message, response_type: type[M]) -> M:
        channel = self._open()
        self.rpc_count += 1
        self.in_flight += 1
        try:
            return await unary_call(
                channel, method, request, response_type, self._config.timeout, self._metadata
            )
        finally:
            self.in_flight -= 1

    def _open(self) -> grpc.aio.Channel:
        if self._closed:
            raise FailedPrecondition(f"client {self._config.client_name!r} is closed")
        loop = asyncio.get_running_loop()
        if self._channel is None:
            tls = self._config.tls
            self._channel = (
                grpc.aio.insecure_channel(self._config.target, CHANNEL_OPTIONS)
                if tls is None
                else grpc.aio.secure_channel(
                    self._config.target, tls.channel_credentials(), CHANNEL_OPTIONS
                )
            )
            self._loop = loop
        elif loop is not self._loop:
            raise FailedPrecondition(
                f"client {self._config.client_name!r} is bound to the event loop it first ran "
                "in: create one client per loop"
            )
        return self._channel


MAX_DRAIN_WAIT = 3600.0
"""How long a drain with the node's own timeout is waited for at most."""


def _packed_page(data: bytes, encoding: int, page_size: int) -> bytes | PackedPage:
    """A page of a get's answer: packed, or its bytes (unpacked by the node, which holds the
    dictionary it was packed with)."""
    if encoding == tmem_pb2.PAGE_ENCODING_UNSPECIFIED:
        if len(data) != page_size:
            raise InternalError(f"a raw page of {len(data)} bytes answered, not {page_size}")
        return data
    return packed_of(data, encoding, page_size)


def _unpacked(page: PackedPage, dictionaries: Dictionaries) -> bytes | None:
    """`page` unpacked; None if its dictionary is not in `dictionaries`: lost, never wrong."""
    try:
        return unpack_page(page, dictionaries)
    except UnknownDictionary:
        return None


def _packed(
    data: bytes, codec: Codec, dictionary: PageDictionary | None
) -> tuple[bytes, tmem_pb2.PageEncoding]:
    """A page's payload (packed with `codec` and `dictionary`) and its encoding on the wire."""
    packed = pack_page(data, codec, dictionary)
    if len(packed.payload) >= len(data):  # incompressible: raw is smaller, the node refuses it
        return data, tmem_pb2.PAGE_ENCODING_UNSPECIFIED
    return packed.payload, packed_encoding(packed)


def _check_count(method: str, received: int, sent: int) -> None:
    if received != sent:
        raise InternalError(f"{method} answered {received} results for {sent} requests")
