"""The `Peer` service: the holder's side of RAMster, node to node.

Hello checks cluster name and protocol version (a mismatch is refused with both values and
logged here) and tells who this node is. The page calls store, return and flush foreign pages
under the origin's number and epoch (`ramster.holder.foreign`); pages arrive packed and are
checked to decode before they are kept. A node with zcache or ramster off, or draining, refuses
to hold new pages. Recover and Forget serve a restarted origin (`ramster.holder.epochs`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import grpc

from nodemanager.keys import check_epoch
from nodemanager.model import MemberInfo
from ramster.api.v1 import peer_pb2, tmem_pb2
from ramster.backend import Backend
from ramster.errors import (
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    Unavailable,
    shown,
)
from ramster.holder.epochs import adopt, forget_origin, held_epochs, held_keys, records
from ramster.holder.foreign import (
    ForeignKey,
    ForeignPages,
    destroy_foreign_pools,
    flush_foreign_objects,
    flush_foreign_pages,
    get_foreign,
    origin_client,
    put_foreign,
)
from ramster.page import PackedPage
from ramster.remote.handles import OriginTmem
from ramster.rpc import convert, foreign_pages
from ramster.rpc.access import current_caller
from ramster.rpc.binding import server_stream, service, unary
from ramster.rpc.peer_link import PROTOCOL_VERSION
from ramster.tmem.keys import Oid, as_oid
from ramster.trust.identity import Identity, Role
from ramster.wire.limits import MAX_RECOVER_EPOCHS
from ramster.wire.messages import oid_of
from ramster.wire.peer_messages import (
    get_batch_response,
    get_response,
    pool_record_message,
    pool_record_of,
)

SERVICE = "ramster.api.v1.Peer"

log = logging.getLogger("ramster.remote")

RECOVER_CHUNK = 16384
"""Keys per message of a Recover stream (about 40 bytes each)."""

NodeIdentity = Callable[[], tuple[int, str, str]]
"""(node number, epoch, address) of this node, as known now."""

Draining = Callable[[], bool]
"""Whether the node drains now (`ClusterAgent.draining`): it refuses new pages for peers."""

Members = Callable[[], Mapping[int, MemberInfo]]
"""The members in this node's view now, by number (`ClusterAgent.members`)."""


class PeerService:
    def __init__(
        self,
        cluster: str,
        node_name: str,
        backend: Backend,
        identity: NodeIdentity,
        draining: Draining,
        members: Members,
        whole_view: bool,
    ) -> None:
        self._cluster = cluster
        self._node_name = node_name
        self._backend = backend
        self._identity = identity
        self._draining = draining
        self._members = members
        self._whole_view = whole_view
        """`members` holds every node of the cluster (etcd's view), not only the peers this node
        was given (static membership, where each node may list others)."""

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        return service(
            SERVICE,
            {
                "Hello": unary("Peer/Hello", self.hello, peer_pb2.HelloRequest.FromString),
                "PutPages": unary(
                    "Peer/PutPages", self.put_pages, peer_pb2.PeerPutRequest.FromString
                ),
                "GetPages": unary(
                    "Peer/GetPages", self.get_pages, peer_pb2.PeerGetRequest.FromString
                ),
                "PutPageBatch": unary(
                    "Peer/PutPageBatch",
                    self.put_page_batch,
                    peer_pb2.PeerPutBatchRequest.FromString,
                ),
                "GetPageBatch": unary(
                    "Peer/GetPageBatch",
                    self.get_page_batch,
                    peer_pb2.PeerGetBatchRequest.FromString,
                ),
                "FlushPages": unary(
                    "Peer/FlushPages", self.flush_pages, peer_pb2.PeerFlushPagesRequest.FromString
                ),
                "FlushPageBatch": unary(
                    "Peer/FlushPageBatch",
                    self.flush_page_batch,
                    peer_pb2.PeerFlushPageBatchRequest.FromString,
                ),
                "FlushObjects": unary(
                    "Peer/FlushObjects",
                    self.flush_objects,
                    peer_pb2.PeerFlushObjectsRequest.FromString,
                ),
                "DestroyPools": unary(
                    "Peer/DestroyPools",
                    self.destroy_pools,
                    peer_pb2.PeerDestroyPoolsRequest.FromString,
                ),
                "Recover": server_stream(
                    "Peer/Recover", self.recover, peer_pb2.RecoverRequest.FromString
                ),
                "Forget": unary("Peer/Forget", self.forget, peer_pb2.ForgetRequest.FromString),
            },
        )

    async def hello(self, request: peer_pb2.HelloRequest) -> peer_pb2.HelloResponse:
        number, epoch, address = self._identity()
        if request.cluster != self._cluster or request.protocol_version != PROTOCOL_VERSION:
            message = (
                f"peer {shown(request.node_name)} is in cluster {shown(request.cluster)} with "
                f"protocol {request.protocol_version}; this node {self._node_name!r} is in cluster "
                f"{self._cluster!r} with protocol {PROTOCOL_VERSION}"
            )
            log.warning("refused hello: %s", message)
            raise FailedPrecondition(message)
        store = self._backend.store
        capacity = self._backend.config.memory
        return peer_pb2.HelloResponse(
            cluster=self._cluster,
            protocol_version=PROTOCOL_VERSION,
            node_name=self._node_name,
            node_number=number,
            epoch=epoch,
            address=address,
            capacity_bytes=capacity,
            free_bytes=max(0, capacity - store.used_bytes) if store is not None else 0,
            zcache=self._backend.zcache,
            ramster=self._backend.ramster,
            draining=self._draining(),
            page_batches=True,
            flush_batches=True,
            sealed_puts_unchecked=True,
        )

    async def put_pages(self, request: peer_pb2.PeerPutRequest) -> peer_pb2.PeerPutResponse:
        results = self._put(request, lambda: foreign_pages.pages_of(request.pages))
        return peer_pb2.PeerPutResponse(results=results)

    async def put_page_batch(
        self, request: peer_pb2.PeerPutBatchRequest
    ) -> peer_pb2.PeerPutBatchResponse:
        """`put_pages` in the lean form: the pages are slices of the request's `data`, with
        their checksums unless a caller proven a node skips them for sealed pages."""

        def pages_of() -> ForeignPages:
            proven = current_caller().identity.role is Role.NODE
            unchecked = foreign_pages.unchecked_puts(request.skip_checksums, proven)
            return foreign_pages.pages_of_batch(request, unchecked)

        results = self._put(request, pages_of)
        return peer_pb2.PeerPutBatchResponse(results=results)

    async def get_pages(self, request: peer_pb2.PeerGetRequest) -> peer_pb2.PeerGetResponse:
        return get_response(self._get(request, lambda: foreign_pages.keys_of(request.keys)))

    async def get_page_batch(
        self, request: peer_pb2.PeerGetBatchRequest
    ) -> peer_pb2.PeerGetBatchResponse:
        """`get_pages` in the lean form: the pages found come back in one bytes field (without
        their checksums if the origin checks them by their seals)."""
        pages = self._get(request, lambda: foreign_pages.keys_of_batch(request))
        return get_batch_response(pages, checksums=not request.skip_checksums)

    def _put(
        self,
        request: peer_pb2.PeerPutRequest | peer_pb2.PeerPutBatchRequest,
        pages_of: Callable[[], ForeignPages],
    ) -> list[tmem_pb2.PutStatus]:
        """A put of the request's pages (`pages_of` reads and checks them once the holder, the
        origin and the holder epoch passed), in either form."""
        tmem = self._holder()
        origin = self._origin(request.origin)
        _, epoch, _ = self._identity()
        if request.holder_epoch and check_epoch(request.holder_epoch, "holder_epoch") != epoch:
            raise FailedPrecondition(
                f"holder_epoch {request.holder_epoch!r} is not this node's epoch {epoch!r}: "
                "it restarted since the origin last saw it"
            )
        pages = pages_of()
        convert.batch_size("pools", len(request.pools))
        owners = [pool_record_of(record, f"pools[{i}]") for i, record in enumerate(request.pools)]
        outcomes = put_foreign(tmem.table, origin, pages, owners, tmem.limits)
        return [convert.put_status(o) for o in outcomes]

    def _get(
        self,
        request: peer_pb2.PeerGetRequest | peer_pb2.PeerGetBatchRequest,
        keys_of: Callable[[], list[ForeignKey]],
    ) -> list[tuple[PackedPage, int] | None]:
        """Each page held for the request's keys (`keys_of` reads and checks them once the
        origin passed) with its version, or None."""
        tmem = self._backend.loaded()
        origin = self._origin(request.origin)
        return get_foreign(tmem.table, origin, keys_of())

    async def flush_pages(
        self, request: peer_pb2.PeerFlushPagesRequest
    ) -> peer_pb2.PeerFlushResponse:
        return self._flush(request.origin, lambda: foreign_pages.flush_keys_of(request))

    async def flush_page_batch(
        self, request: peer_pb2.PeerFlushPageBatchRequest
    ) -> peer_pb2.PeerFlushResponse:
        """`flush_pages` in the lean form."""
        return self._flush(request.origin, lambda: foreign_pages.flush_keys_of_batch(request))

    def _flush(
        self, origin: peer_pb2.Origin, keys_of: Callable[[], list[tuple[int, Oid, int, int]]]
    ) -> peer_pb2.PeerFlushResponse:
        """A page flush in either form (`keys_of` reads its keys once the origin passed)."""
        tmem, client = self._backend.loaded(), self._origin(origin)
        flushed = flush_foreign_pages(tmem.table, client, keys_of())
        return peer_pb2.PeerFlushResponse(flushed=flushed)

    async def flush_objects(
        self, request: peer_pb2.PeerFlushObjectsRequest
    ) -> peer_pb2.PeerFlushResponse:
        tmem = self._backend.loaded()
        origin = self._origin(request.origin)
        convert.batch_size("objects", len(request.objects))
        latest = foreign_pages.latest_version()
        objects = [
            (
                o.pool,
                as_oid(oid_of(o.oid), f"objects[{i}].oid"),
                foreign_pages.checked_version(o.version, latest, f"objects[{i}]", any_version=True),
            )
            for i, o in enumerate(request.objects)
        ]
        return peer_pb2.PeerFlushResponse(
            flushed=flush_foreign_objects(tmem.table, origin, objects)
        )

    async def destroy_pools(
        self, request: peer_pb2.PeerDestroyPoolsRequest
    ) -> peer_pb2.PeerFlushResponse:
        tmem = self._backend.loaded()
        origin = self._origin(request.origin)
        convert.batch_size("pools", len(request.pools))
        return peer_pb2.PeerFlushResponse(
            flushed=destroy_foreign_pools(tmem.table, origin, list(request.pools))
        )

    async def recover(
        self, request: peer_pb2.RecoverRequest
    ) -> AsyncIterator[peer_pb2.RecoverChunk]:
        tmem = self._backend.loaded()
        self._origin(request.origin)
        number, epoch = request.origin.node_number, request.origin.epoch
        if len(request.keep) > MAX_RECOVER_EPOCHS:
            raise InvalidArgument.field(
                "keep", f"{len(request.keep)} epochs", f"at most {MAX_RECOVER_EPOCHS}"
            )
        keep = [check_epoch(e, f"keep[{i}]") for i, e in enumerate(request.keep)]
        if not keep:
            held = [e for e in held_epochs(tmem.table, number) if e != epoch]
            yield peer_pb2.RecoverChunk(epochs=held)
            return
        pools = adopt(tmem.table, number, keep, epoch)
        log.info(
            "node %d (epoch %s) takes back %d pools of its epochs %s",
            number,
            epoch,
            len(pools),
            ", ".join(keep),
        )
        yield peer_pb2.RecoverChunk(pools=[pool_record_message(r) for r in records(pools)])
        keys: list[peer_pb2.RemoteKey] = []
        for uid, oid, index, version in held_keys(pools, tmem.table):
            keys.append(
                peer_pb2.RemoteKey(
                    pool=uid,
                    oid=tmem_pb2.Oid(word0=oid[0], word1=oid[1], word2=oid[2]),
                    index=index,
                    version=version,
                )
            )
            if len(keys) == RECOVER_CHUNK:
                yield peer_pb2.RecoverChunk(keys=keys)
                keys = []
        if keys:
            yield peer_pb2.RecoverChunk(keys=keys)

    async def forget(self, request: peer_pb2.ForgetRequest) -> peer_pb2.PeerFlushResponse:
        tmem = self._backend.loaded()
        self._origin(request.origin)
        dropped = forget_origin(tmem.table, request.origin.node_number, request.origin.epoch)
        if dropped:
            log.info(
                "forgot %d pages of earlier epochs of node %d", dropped, request.origin.node_number
            )
        return peer_pb2.PeerFlushResponse(flushed=[dropped > 0])

    def _holder(self) -> OriginTmem:
        tmem = self._backend.loaded()
        if not self._backend.ramster:
            raise FailedPrecondition(
                f"node {self._node_name!r} has ramster off: it holds no pages for peers"
            )
        if self._draining():
            raise FailedPrecondition(
                f"node {self._node_name!r} is draining: it takes no new pages for peers"
            )
        return tmem

    def _origin(self, origin: peer_pb2.Origin) -> str:
        """The client name of a request's origin: another node, named by a well-formed epoch,
        and, for a caller who proved it is a node, that node itself in its current epoch (a
        node without TLS, where nobody proves a name, trusts the origin a request names)."""
        me, _, _ = self._identity()
        if origin.node_number < 1 or origin.node_number == me:
            raise InvalidArgument.field(
                "origin.node_number",
                origin.node_number,
                f"another node's number, >= 1 (this node is {me})",
            )
        epoch = check_epoch(origin.epoch, "origin.epoch")
        caller = current_caller().identity
        if caller.role is Role.NODE:
            self._check_origin(caller, origin.node_number, epoch)
        return origin_client(origin.node_number, epoch)

    def _check_origin(self, caller: Identity, number: int, epoch: str) -> None:
        """A node calls for its own pages only: the member of number `number` in this node's
        view (etcd's, or the static peers') must be the node the caller's certificate names, in
        epoch `epoch`. A member not seen yet, or seen in another epoch, may be one that just
        (re)started: UNAVAILABLE, asked again; another node's number never is. Without etcd
        nothing maps names to numbers: a number the static view does not hold is the caller's
        word."""
        member = self._members().get(number)
        if member is None and not self._whole_view:
            return
        if member is None:
            raise Unavailable(
                f"origin.node_number {number} is no member this node knows yet: retry shortly"
            )
        if member.name != caller.name:
            raise PermissionDenied(
                f"origin.node_number {number} is node {shown(member.name)}: {caller!r} "
                "may call for its own pages only"
            )
        if member.epoch != epoch:
            raise Unavailable(
                f"origin.epoch {shown(epoch)} is not the epoch node {number} runs in as this node "
                f"knows it ({shown(member.epoch)}): retry shortly"
            )
