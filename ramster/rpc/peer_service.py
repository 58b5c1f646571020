"""The `Peer` service: the holder's side of RAMster, node to node.

Hello checks cluster name and protocol version (a mismatch is refused with both values and
logged here) and tells who this node is. The page calls store, return and flush foreign pages
under the origin's number and epoch (`ramster.tmem.foreign`); pages arrive packed and are
checked to decode before they are kept. A node with zcache or ramster off, or draining, refuses
to hold new pages. Recover and Forget serve a restarted origin (`ramster.tmem.recovery`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any
from zlib import crc32

import grpc

from ramster.api.v1 import peer_pb2, tmem_pb2
from ramster.backend import Backend
from ramster.errors import FailedPrecondition, InvalidArgument, shown
from ramster.remote.links import PROTOCOL_VERSION, pool_record_message, pool_record_of
from ramster.rpc import convert
from ramster.rpc.binding import server_stream, service, unary
from ramster.tmem import PackedPage, Tmem
from ramster.tmem.foreign import (
    ForeignPage,
    destroy_foreign_pools,
    flush_foreign_objects,
    flush_foreign_pages,
    get_foreign,
    origin_client,
    put_foreign,
)
from ramster.tmem.keys import check_page_size
from ramster.tmem.recovery import adopt, forget_origin, held_epochs, held_keys, records
from ramster.zcache.codec import check_packed

SERVICE = "ramster.api.v1.Peer"

log = logging.getLogger("ramster.remote")

RECOVER_CHUNK = 16384
"""Keys per message of a Recover stream (about 40 bytes each)."""

NodeIdentity = Callable[[], tuple[int, str, str]]
"""(node number, epoch, address) of this node, as known now."""


class PeerService:
    def __init__(
        self, cluster: str, node_name: str, backend: Backend, identity: NodeIdentity
    ) -> None:
        self._cluster = cluster
        self._node_name = node_name
        self._backend = backend
        self._identity = identity
        self.draining = False
        """Set while the node drains: it refuses new pages for peers."""

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
                "FlushPages": unary(
                    "Peer/FlushPages", self.flush_pages, peer_pb2.PeerFlushPagesRequest.FromString
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
            draining=self.draining,
        )

    async def put_pages(self, request: peer_pb2.PeerPutRequest) -> peer_pb2.PeerPutResponse:
        tmem = self._holder()
        _, epoch, _ = self._identity()
        if request.holder_epoch and request.holder_epoch != epoch:
            raise FailedPrecondition(
                f"holder_epoch {shown(request.holder_epoch)} is not this node's epoch {epoch!r}: "
                "it restarted since the origin last saw it"
            )
        convert.batch_size("pages", len(request.pages))
        convert.batch_size("pools", len(request.pools))
        pages = [_foreign_page(page, i) for i, page in enumerate(request.pages)]
        owners = [pool_record_of(record) for record in request.pools]
        outcomes = put_foreign(tmem, _origin(request.origin), pages, owners)
        return peer_pb2.PeerPutResponse(results=[convert.put_status(o) for o in outcomes])

    async def get_pages(self, request: peer_pb2.PeerGetRequest) -> peer_pb2.PeerGetResponse:
        tmem = self._backend.loaded()
        keys = [(k.pool, convert.oid_of(k.oid), k.index) for k in request.keys]
        convert.batch_size("keys", len(keys))
        answers = get_foreign(tmem, _origin(request.origin), keys, request.free)
        same, lz4 = tmem_pb2.PAGE_ENCODING_SAME_FILLED, tmem_pb2.PAGE_ENCODING_LZ4
        raw = tmem_pb2.PAGE_ENCODING_RAW
        return peer_pb2.PeerGetResponse(
            found=[a is not None for a in answers],
            data=[a[0].payload if a is not None else b"" for a in answers],
            encodings=[
                (same if a[0].same_filled else lz4) if a is not None else raw for a in answers
            ],
            versions=[a[1] if a is not None else 0 for a in answers],
            checksums=[crc32(a[0].payload) if a is not None else 0 for a in answers],
        )

    async def flush_pages(
        self, request: peer_pb2.PeerFlushPagesRequest
    ) -> peer_pb2.PeerFlushResponse:
        tmem = self._backend.loaded()
        convert.batch_size("keys", len(request.keys))
        keys = [(k.pool, convert.oid_of(k.oid), k.index, k.version) for k in request.keys]
        return peer_pb2.PeerFlushResponse(
            flushed=flush_foreign_pages(tmem, _origin(request.origin), keys)
        )

    async def flush_objects(
        self, request: peer_pb2.PeerFlushObjectsRequest
    ) -> peer_pb2.PeerFlushResponse:
        tmem = self._backend.loaded()
        convert.batch_size("objects", len(request.objects))
        objects = [(o.pool, convert.oid_of(o.oid)) for o in request.objects]
        return peer_pb2.PeerFlushResponse(
            flushed=flush_foreign_objects(tmem, _origin(request.origin), objects)
        )

    async def destroy_pools(
        self, request: peer_pb2.PeerDestroyPoolsRequest
    ) -> peer_pb2.PeerFlushResponse:
        tmem = self._backend.loaded()
        convert.batch_size("pools", len(request.pools))
        return peer_pb2.PeerFlushResponse(
            flushed=destroy_foreign_pools(tmem, _origin(request.origin), list(request.pools))
        )

    async def recover(
        self, request: peer_pb2.RecoverRequest
    ) -> AsyncIterator[peer_pb2.RecoverChunk]:
        tmem = self._backend.loaded()
        _origin(request.origin)
        number, epoch = request.origin.node_number, request.origin.epoch
        if not request.keep:
            held = [e for e in held_epochs(tmem, number) if e != epoch]
            yield peer_pb2.RecoverChunk(epochs=held)
            return
        pools = adopt(tmem, number, request.keep, epoch)
        log.info(
            "node %d (epoch %s) takes back %d pools of its epoch %s",
            number,
            epoch,
            len(pools),
            request.keep,
        )
        yield peer_pb2.RecoverChunk(pools=[pool_record_message(r) for r in records(pools)])
        keys: list[peer_pb2.RemoteKey] = []
        for uid, oid, index, version in held_keys(pools, tmem):
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
        _origin(request.origin)
        dropped = forget_origin(tmem, request.origin.node_number, request.origin.epoch)
        if dropped:
            log.info(
                "forgot %d pages of earlier epochs of node %d", dropped, request.origin.node_number
            )
        return peer_pb2.PeerFlushResponse(flushed=[dropped > 0])

    def _holder(self) -> Tmem:
        tmem = self._backend.loaded()
        if not self._backend.ramster:
            raise FailedPrecondition(
                f"node {self._node_name!r} has ramster off: it holds no pages for peers"
            )
        if self.draining:
            raise FailedPrecondition(
                f"node {self._node_name!r} is draining: it takes no new pages for peers"
            )
        return tmem


def _origin(origin: peer_pb2.Origin) -> str:
    if not origin.epoch:
        raise FailedPrecondition("origin.epoch is empty: every peer request names its origin")
    return origin_client(origin.node_number, origin.epoch)


def _foreign_page(page: peer_pb2.RemotePage, i: int) -> ForeignPage:
    same = page.encoding == tmem_pb2.PAGE_ENCODING_SAME_FILLED
    check_page_size(page.page_size, f"pages[{i}].page_size")
    if crc32(page.data) != page.checksum:
        raise InvalidArgument(
            f"pages[{i}].checksum {page.checksum:#010x} does not match its data "
            f"({crc32(page.data):#010x}): the page was damaged on the way"
        )
    packed = check_packed(PackedPage(page.data, same, page.page_size), f"pages[{i}].data")
    return ForeignPage(
        pool_uid=page.pool,
        persistent=page.persistent,
        oid=convert.oid_of(page.oid),
        index=page.index,
        version=page.version,
        page=packed,
    )
