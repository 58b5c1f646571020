"""The `Tmem` service: applications' page calls, validated and handed to the node's backend.

Besides the core's counters it counts pages by pool class under the frontends' kernel names,
so a node shows cleancache-style hits and frontswap-style loads for all of its clients.

A get that frees takes its pages only once its answer is built, fits one message and can still
reach the caller (the kernel frees on an exclusive get only once the data is delivered): a
caller that gave up, or an answer too large to send, frees nothing. A persistent page no holder
answered for fails the get UNAVAILABLE (retriable): it is not gone, so it is no miss.
"""

from __future__ import annotations

from typing import Any, cast

import grpc

from ramster.api.v1 import tmem_pb2
from ramster.backend import Backend
from ramster.errors import DeadlineExceeded, ResourceExhausted, Unavailable
from ramster.page import unpack_page
from ramster.remote.fetch import Fetched
from ramster.remote.layer import RemoteLayer
from ramster.rpc import convert
from ramster.rpc.binding import Call, service, unary, unary_watched
from ramster.tmem import Hit, Oid, PutOutcome, Rejected, RejectReason, Stored, Tmem
from ramster.tmem.remote import RemoteRef, Unanswered
from ramster.wire.limits import MAX_MESSAGE
from ramster.wire.messages import oid_of

SERVICE = "ramster.api.v1.Tmem"


class TmemService:
    """Serves `Tmem` from `backend`, whichever zcache generation is loaded."""

    def __init__(self, backend: Backend, remote: RemoteLayer | None = None) -> None:
        self._backend = backend
        self.remote = remote
        self.counters = dict.fromkeys(
            (
                "cleancache_puts",
                "cleancache_succ_gets",
                "cleancache_failed_gets",
                "cleancache_invalidates",
                "frontswap_succ_stores",
                "frontswap_failed_stores",
                "frontswap_loads",
                "frontswap_failed_loads",
                "frontswap_invalidates",
            ),
            0,
        )

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
                "FlushPages": unary(
                    "Tmem/FlushPages", self.flush_pages, tmem_pb2.FlushPagesRequest.FromString
                ),
                "FlushObjects": unary(
                    "Tmem/FlushObjects", self.flush_objects, tmem_pb2.FlushObjectsRequest.FromString
                ),
            },
        )

    async def new_pool(self, request: tmem_pb2.NewPoolRequest) -> tmem_pb2.NewPoolResponse:
        tmem = self._backend.require()
        spec = convert.pool_spec(request)
        pool_id = tmem.new_pool(convert.client_name(request.client), spec)
        return tmem_pb2.NewPoolResponse(pool_id=pool_id)

    async def destroy_pool(
        self, request: tmem_pb2.DestroyPoolRequest
    ) -> tmem_pb2.DestroyPoolResponse:
        tmem = self._backend.require()
        flushed = tmem.destroy_pool(convert.client_name(request.client), request.pool_id)
        return tmem_pb2.DestroyPoolResponse(pages_flushed=flushed)

    async def put_pages(self, request: tmem_pb2.PutPagesRequest) -> tmem_pb2.PutPagesResponse:
        tmem = self._backend.require()
        client = convert.client_name(request.client)
        spec = tmem.pool_spec(client, request.pool_id)
        pages = convert.pages_of(request.pages, spec.page_size)
        outcomes = tmem.put_many(client, request.pool_id, pages)
        if self.remote is not None:
            if spec.persistent:
                keys = [(oid, index) for oid, index, _ in pages]
                outcomes = await self._replicate(tmem, client, request.pool_id, keys, outcomes)
            self.remote.note_pressure()
        stored = sum(isinstance(outcome, Stored) for outcome in outcomes)
        if spec.persistent:
            self.counters["frontswap_succ_stores"] += stored
            self.counters["frontswap_failed_stores"] += len(outcomes) - stored
        else:
            self.counters["cleancache_puts"] += len(outcomes)
        return tmem_pb2.PutPagesResponse(results=[convert.put_status(o) for o in outcomes])

    async def get_pages(
        self, request: tmem_pb2.GetPagesRequest, call: Call
    ) -> tmem_pb2.GetPagesResponse:
        tmem = self._backend.require()
        client = convert.client_name(request.client)
        spec = tmem.pool_spec(client, request.pool_id)
        frees = tmem.frees_on_get(client, request.pool_id, convert.free_of(request.mode))
        keys = convert.keys_of(request.keys)
        found = tmem.get_many_packed(client, request.pool_id, keys)
        remote = [(n, page) for n, page in enumerate(found) if isinstance(page, RemoteRef)]
        hits = cast(list[Hit | None], found)
        if remote:
            fetched = await self._fetch([ref for _, ref in remote], keep=not frees)
            unanswered: list[tuple[int, Unanswered]] = []
            for (n, _), page in zip(remote, fetched, strict=True):
                if isinstance(page, Unanswered):
                    unanswered.append((n, page))
                else:
                    hits[n] = page
            if unanswered:  # nothing is freed: the whole get is to be tried again
                raise _unavailable(unanswered)
        response = _answer(hits, request.packed, spec.page_size)
        if frees and any(hits):
            if not call.alive():  # nobody will receive the pages: they stay
                raise DeadlineExceeded("the caller is gone: no page was freed")
            taken = iter(tmem.take([hit for hit in hits if hit is not None]))
            kept = [hit if hit is not None and next(taken) else None for hit in hits]
            if kept != hits:  # another get took some meanwhile: those are misses here
                hits, response = kept, _answer(kept, request.packed, spec.page_size)
        self._count_gets(spec.persistent, len(keys), sum(hit is not None for hit in hits))
        return response

    async def _replicate(
        self,
        tmem: Tmem,
        client: str,
        pool_id: int,
        keys: list[tuple[Oid, int]],
        outcomes: list[PutOutcome],
    ) -> list[PutOutcome]:
        """The outcomes once every stored page has its other copy on a peer: a page that got
        none was taken back and is refused NO_REPLICA (DESIGN §6)."""
        assert self.remote is not None
        failed = await self.remote.replicate(tmem, client, pool_id, keys, outcomes)
        if not failed:
            return outcomes
        refused = Rejected(RejectReason.NO_REPLICA)
        return [
            refused if isinstance(outcome, Stored) and key in failed else outcome
            for key, outcome in zip(keys, outcomes, strict=True)
        ]

    async def _fetch(self, refs: list[RemoteRef], keep: bool) -> list[Fetched]:
        if self.remote is None:  # remote pages without a remote layer: nothing can fetch them
            return [None] * len(refs)
        return await self.remote.fetch(refs, keep)

    def _count_gets(self, persistent: bool, asked: int, hits: int) -> None:
        if persistent:
            self.counters["frontswap_loads"] += hits
            self.counters["frontswap_failed_loads"] += asked - hits
        else:
            self.counters["cleancache_succ_gets"] += hits
            self.counters["cleancache_failed_gets"] += asked - hits

    async def flush_pages(self, request: tmem_pb2.FlushPagesRequest) -> tmem_pb2.FlushPagesResponse:
        tmem = self._backend.require()
        client = convert.client_name(request.client)
        persistent = tmem.pool_spec(client, request.pool_id).persistent
        flushed = tmem.flush_many(client, request.pool_id, convert.keys_of(request.keys))
        name = "frontswap_invalidates" if persistent else "cleancache_invalidates"
        self.counters[name] += sum(flushed)
        return tmem_pb2.FlushPagesResponse(flushed=flushed)

    async def flush_objects(
        self, request: tmem_pb2.FlushObjectsRequest
    ) -> tmem_pb2.FlushObjectsResponse:
        tmem = self._backend.require()
        client = convert.client_name(request.client)
        convert.batch_size("oids", len(request.oids))
        oids = [oid_of(oid) for oid in request.oids]
        flushed = tmem.flush_objects(client, request.pool_id, oids)
        return tmem_pb2.FlushObjectsResponse(flushed=flushed)


def _answer(hits: list[Hit | None], packed: bool, page_size: int) -> tmem_pb2.GetPagesResponse:
    """The answer to a get, refused before anything is freed if it is too large to send."""
    pages = [hit.page if hit is not None else None for hit in hits]
    if packed:
        response = convert.packed_response(pages, page_size)
    else:
        response = tmem_pb2.GetPagesResponse(
            found=[page is not None for page in pages],
            data=[unpack_page(page) if page is not None else b"" for page in pages],
        )
    size = response.ByteSize()
    if size > MAX_MESSAGE:
        raise ResourceExhausted(
            f"the answer to {len(hits)} keys is {size} bytes, more than one message holds "
            f"({MAX_MESSAGE}): ask for fewer keys (no page was freed)"
        )
    return response


def _unavailable(unanswered: list[tuple[int, Unanswered]]) -> Unavailable:
    """The refusal of a get whose persistent pages no holder answered for: they stay."""
    n, first = unanswered[0]
    nodes = " and ".join(f"node {node}" for node in first.nodes)
    more = f" (and {len(unanswered) - 1} more keys)" if len(unanswered) > 1 else ""
    return Unavailable(
        f"keys[{n}] is a page held by {nodes}, which did not answer in time{more}: it is kept, "
        "try again"
    )
