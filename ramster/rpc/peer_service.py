"""The `Peer` service, node to node. For now the handshake: cluster name and protocol version
must match, and a mismatch is refused with a message naming both values and logged here."""

from __future__ import annotations

import logging
from typing import Any

import grpc

from ramster.api.v1 import peer_pb2
from ramster.errors import FailedPrecondition
from ramster.rpc.binding import service, unary

SERVICE = "ramster.api.v1.Peer"
PROTOCOL_VERSION = 1

log = logging.getLogger("ramster.remote")


class PeerService:
    def __init__(self, cluster: str, node_name: str, node_number: int = 0) -> None:
        self._cluster = cluster
        self._node_name = node_name
        self._node_number = node_number

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        return service(
            SERVICE, {"Hello": unary("Peer/Hello", self.hello, peer_pb2.HelloRequest.FromString)}
        )

    async def hello(self, request: peer_pb2.HelloRequest) -> peer_pb2.HelloResponse:
        if request.cluster != self._cluster or request.protocol_version != PROTOCOL_VERSION:
            message = (
                f"peer {request.node_name!r} is in cluster {request.cluster!r} with protocol "
                f"{request.protocol_version}; this node {self._node_name!r} is in cluster "
                f"{self._cluster!r} with protocol {PROTOCOL_VERSION}"
            )
            log.warning("refused hello: %s", message)
            raise FailedPrecondition(message)
        return peer_pb2.HelloResponse(
            cluster=self._cluster,
            protocol_version=PROTOCOL_VERSION,
            node_name=self._node_name,
            node_number=self._node_number,
        )
