"""The `Tmem` service: applications' page calls, validated and handed to the node's `TieredTmem`.

This module only converts: messages in, values to `ramster.tiered.TieredTmem` (the put and get
paths, their counters and the rule of a get that frees), messages out. Pools belong to the
caller's identity (`ramster.rpc.access.current_caller`): a request's `client` is a label inside
it, so the node's client is `owner_of` both, and another identity naming the same label, pool id
or shared UUID reaches pools of its own, never these (NOT_FOUND for an id it has no pool
under). It also refuses an answer
too large to send before anything is freed: the get's pages are taken only once their answer is
built and fits one message (`TieredTmem.deliver`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import grpc

from ramster.api.v1 import tmem_pb2
from ramster.errors import ResourceExhausted
from ramster.expiry import ClientSessions
from ramster.page import Readable, unpack_page
from ramster.rpc import convert
from ramster.rpc.access import current_caller
from ramster.rpc.binding import Call, service, unary, unary_watched
from ramster.tiered import TieredTmem
from ramster.tmem import Oid
from ramster.tmem.keys import owner_name
from ramster.wire.limits import MAX_MESSAGE, check_client_name
from ramster.wire.messages import oid_of

SERVICE = "ramster.api.v1.Tmem"


def owner_of(label: str) -> str:
    """The node's client name of client `label` of the caller being served: ``role:name/label``
    (`ramster.tmem.keys.owner_name`)."""
    return owner_name(str(current_caller().identity), check_client_name(label))


class TmemService:
    """Serves `Tmem` from the node's `tiered` put and get paths; every call naming a client
    keeps its session (`sessions`)."""

    def __init__(self, tiered: TieredTmem, sessions: ClientSessions) -> None:
        self._tiered = tiered
        self._sessions = sessions

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        return service(
            SERVICE,
            {
                "NewPool": unary("Tmem/NewPool", self.new_pool, tmem_pb2.NewPoolRequest.FromString),
                "DestroyPool": unary(
                    "Tmem/DestroyPool", self.destroy_pool, tmem_pb2.DestroyPoolRequest.FromString
                ),
                "PutPages": unary(
                    "Tmem/PutPages", self.put_pages, tmem_pb2.PutPagesRequest.FromString
                ),
                "GetPages": unary_watched(
                    "Tmem/GetPages", self.get_pages, tmem_pb2.GetPagesRequest.FromString
                ),
                "PutPageBatch": unary(
                    "Tmem/PutPageBatch",
                    self.put_page_batch,
                    tmem_pb2.PutPageBatchRequest.FromString,
                ),
                "GetPageBatch": unary_watched(
                    "Tmem/GetPageBatch",
                    self.get_page_batch,
                    tmem_pb2.GetPageBatchRequest.FromString,
                ),
                "FlushPages": unary(
                    "Tmem/FlushPages", self.flush_pages, tmem_pb2.FlushPagesRequest.FromString
                ),
                "FlushObjects": unary(
                    "Tmem/FlushObjects", self.flush_objects, tmem_pb2.FlushObjectsRequest.FromString
                ),
                "GetDictionary": unary(
                    "Tmem/GetDictionary",
                    self.get_dictionary,
                    tmem_pb2.GetDictionaryRequest.FromString,
                ),
                "KeepAlive": unary(
                    "Tmem/KeepAlive", self.keep_alive, tmem_pb2.KeepAliveRequest.FromString
                ),
            },
        )

    async def new_pool(self, request: tmem_pb2.NewPoolRequest) -> tmem_pb2.NewPoolResponse:
        self._tiered.check_serving()
        spec = convert.pool_spec(request, self._tiered.default_codec)
        client = self._client(request.client)
        pool_id, uid = self._tiered.new_pool(client, spec)
        self._sessions.seen(client)  # its first pool: from now on it has a session
        return tmem_pb2.NewPoolResponse(
            pool_id=pool_id, pool_uid=uid, codec=spec.codec.name, codec_level=spec.codec.level
        )

    async def destroy_pool(
        self, request: tmem_pb2.DestroyPoolRequest
    ) -> tmem_pb2.DestroyPoolResponse:
        self._tiered.check_serving()
        client = self._client(request.client)
        flushed = self._tiered.destroy_pool(client, request.pool_id, request.pool_uid)
        return tmem_pb2.DestroyPoolResponse(pages_flushed=flushed)

    async def put_pages(self, request: tmem_pb2.PutPagesRequest) -> tmem_pb2.PutPagesResponse:
        self._tiered.check_serving()
        client = self._client(request.client)
        spec = self._tiered.pool_spec(client, request.pool_id, request.pool_uid)
        pages = convert.pages_of(request.pages, spec.page_size)
        outcomes = await self._tiered.put(client, request.pool_id, pages)
        return tmem_pb2.PutPagesResponse(results=[convert.put_status(o) for o in outcomes])

    async def put_page_batch(
        self, request: tmem_pb2.PutPageBatchRequest
    ) -> tmem_pb2.PutPageBatchResponse:
        """`put_pages` in the lean form: the pages are slices of the request's `data`."""
        self._tiered.check_serving()
        client = self._client(request.client)
        spec = self._tiered.pool_spec(client, request.pool_id, request.pool_uid)
        keys = convert.keys_of_batch(request.keys)
        dictionaries = self._tiered.dictionaries.of_pool(client, request.pool_id)
        pages = convert.pages_of_batch(request, len(keys), spec.page_size, dictionaries)
        outcomes = await self._tiered.put(
            client,
            request.pool_id,
            [(oid, index, page) for (oid, index), page in zip(keys, pages, strict=True)],
        )
        advice = self._tiered.dictionaries.pack_advice(client, request.pool_id)
        return tmem_pb2.PutPageBatchResponse(
            results=[convert.put_status(o) for o in outcomes],
            pack=advice is not None,
            pack_dictionary=advice or 0,
        )

    async def get_pages(
        self, request: tmem_pb2.GetPagesRequest, call: Call
    ) -> tmem_pb2.GetPagesResponse:
        def keys() -> list[tuple[Oid, int]]:
            return convert.keys_of(request.keys)

        if request.packed:
            return await self._get(request, keys, call, convert.packed_response)
        return await self._get(request, keys, call, _unpacked_response)

    async def get_page_batch(
        self, request: tmem_pb2.GetPageBatchRequest, call: Call
    ) -> tmem_pb2.GetPageBatchResponse:
        """`get_pages` in the lean form: the pages found come back in one bytes field."""

        def keys() -> list[tuple[Oid, int]]:
            return convert.keys_of_batch(request.keys)

        return await self._get(request, keys, call, convert.batch_response, request.dictionaries)

    async def _get(
        self,
        request: GetRequest,
        keys_of: Callable[[], list[tuple[Oid, int]]],
        call: Call,
        answer: Answer[R],
        dictionaries_ok: bool = False,
    ) -> R:
        """A get of the request's keys (`keys_of` reads them once the pool and mode passed),
        answered as `answer` builds it, refused before anything is freed if that is too large
        to send."""
        self._tiered.check_serving()
        client = self._client(request.client)
        spec = self._tiered.pool_spec(client, request.pool_id, request.pool_uid)
        free = convert.free_of(request.mode)
        got = await self._tiered.get(client, request.pool_id, keys_of(), free)
        pages = self._tiered.readable(got.hits, spec, got.pool_uid, dictionaries_ok)
        response = _fitting(answer, pages, spec.page_size)
        hits = self._tiered.deliver(got, call.alive)
        if hits != got.hits:  # another get took some meanwhile: those are misses here
            pages = [
                page if hit is not None else None for page, hit in zip(pages, hits, strict=True)
            ]
            response = _fitting(answer, pages, spec.page_size)
        return response

    async def flush_pages(self, request: tmem_pb2.FlushPagesRequest) -> tmem_pb2.FlushPagesResponse:
        self._tiered.check_serving()
        client = self._client(request.client)
        # An unknown pool before bad keys.
        self._tiered.pool_spec(client, request.pool_id, request.pool_uid)
        flushed = self._tiered.flush(client, request.pool_id, convert.keys_of(request.keys))
        return tmem_pb2.FlushPagesResponse(flushed=flushed)

    async def flush_objects(
        self, request: tmem_pb2.FlushObjectsRequest
    ) -> tmem_pb2.FlushObjectsResponse:
        self._tiered.check_serving()
        client = self._client(request.client)
        self._tiered.pool_spec(client, request.pool_id, request.pool_uid)
        convert.batch_size("oids", len(request.oids))
        oids = [oid_of(oid) for oid in request.oids]
        flushed = self._tiered.flush_objects(client, request.pool_id, oids)
        return tmem_pb2.FlushObjectsResponse(flushed=flushed)

    async def get_dictionary(
        self, request: tmem_pb2.GetDictionaryRequest
    ) -> tmem_pb2.GetDictionaryResponse:
        self._tiered.check_serving()
        client = self._client(request.client)
        data = self._tiered.dictionaries.dictionary(
            client, request.pool_id, request.pool_uid, request.dictionary
        )
        return tmem_pb2.GetDictionaryResponse(dictionary=data)

    async def keep_alive(self, request: tmem_pb2.KeepAliveRequest) -> tmem_pb2.KeepAliveResponse:
        """Answered whatever the backend does: a session outlives a node's recovery."""
        self._client(request.client)
        lease, grace = self._sessions.terms()
        return tmem_pb2.KeepAliveResponse(lease_seconds=lease, grace_seconds=grace)

    def _client(self, label: str) -> str:
        """The node's client of `label` (`owner_of`), seen now."""
        client = owner_of(label)
        self._sessions.seen(client)
        return client


GetRequest = tmem_pb2.GetPagesRequest | tmem_pb2.GetPageBatchRequest
R = TypeVar("R", tmem_pb2.GetPagesResponse, tmem_pb2.GetPageBatchResponse)
Answer = Callable[[Sequence[Readable], int], R]
"""How a get's answer is built from its pages (None: a miss) and the pool's page size."""


def _unpacked_response(pages: Sequence[Readable], page_size: int) -> tmem_pb2.GetPagesResponse:
    return tmem_pb2.GetPagesResponse(
        found=[page is not None for page in pages],
        data=[
            b"" if page is None else page if isinstance(page, bytes) else unpack_page(page)
            for page in pages
        ],
    )


def _fitting(answer: Answer[R], pages: Sequence[Readable], page_size: int) -> R:
    """The answer to a get, refused before anything is freed if it is too large to send."""
    response = answer(pages, page_size)
    size = response.ByteSize()
    if size > MAX_MESSAGE:
        raise ResourceExhausted(
            f"the answer to {len(pages)} keys is {size} bytes, more than one message holds "
            f"({MAX_MESSAGE}): ask for fewer keys (no page was freed)"
        )
    return response
