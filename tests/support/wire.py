"""Raw gRPC calls to a node: the status and message exactly as the node sent them.

The client library maps statuses onto `RamsterError` classes; tests of the wire contract need the
raw answer instead, and must be able to send bytes no library would produce. `RawNode` sends
serialized messages (or any bytes) to a method path and returns an `Answer` (with the details of
a refusal's google.rpc.Status, unpacked); `METHODS` lists every
method of every `ramster.api.v1` service, read from the generated descriptors so new methods are
covered without editing the tests.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from ramster.api.v1 import admin_pb2, peer_pb2, tmem_pb2
from ramster.page import pack_page
from ramster.wire.calls import Message
from ramster.wire.tls import TLS

SEND_LIMIT = 16 * 2**20
"""Larger than the node's 4 MiB limit, so the node (not this client) enforces it."""


@dataclass(frozen=True, slots=True)
class Method:
    path: str  # "/ramster.api.v1.Tmem/PutPages"
    input_type: Descriptor
    server_streaming: bool

    def request(self, **fields: Any) -> Any:
        """A request message of this method's input type."""
        return message_factory.GetMessageClass(self.input_type)(**fields)


METHODS: tuple[Method, ...] = tuple(
    Method(f"/{service.full_name}/{method.name}", method.input_type, method.server_streaming)
    for module in (tmem_pb2, admin_pb2, peer_pb2)
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
)


@dataclass(frozen=True, slots=True)
class Answer:
    """How a call ended: its status code, the status message, and the response bytes if OK
    (for a server stream, the first message)."""

    code: grpc.StatusCode
    details: str
    body: bytes = b""
    error_details: tuple[Any, ...] = ()
    """The details of the rich status (ErrorInfo, BadRequest), in the order sent."""

    def parsed(self, response_type: Any) -> Any:
        assert self.code is grpc.StatusCode.OK, (self.code, self.details)
        return response_type.FromString(self.body)

    @property
    def refusal(self) -> tuple[grpc.StatusCode, str]:
        return self.code, self.details


DETAIL_TYPES = (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest)


def refused(error: Any) -> Answer:
    """The answer of a call that ended with `error` (a `grpc.RpcError` that is a `grpc.Call`),
    with each detail of its rich status unpacked; a detail of another type fails the test."""
    status = rpc_status.from_call(error)
    unpacked = []
    for detail in status.details if status is not None else ():
        types = [t for t in DETAIL_TYPES if detail.Is(t.DESCRIPTOR)]
        assert len(types) == 1, f"a detail of an unexpected type: {detail.type_url}"
        message = types[0]()
        detail.Unpack(message)
        unpacked.append(message)
    return Answer(error.code(), error.details() or "", error_details=tuple(unpacked))


class RawNode:
    """A gRPC channel to a node at `address` (``HOST:PORT`` or ``unix:///path``), with `tls` if
    given."""

    def __init__(self, address: str, timeout: float = 10.0, tls: TLS | None = None) -> None:
        self.address = address
        self.timeout = timeout
        options = [
            ("grpc.max_send_message_length", SEND_LIMIT),
            ("grpc.max_receive_message_length", SEND_LIMIT),
        ]
        self.channel = (
            grpc.insecure_channel(address, options=options)
            if tls is None
            else grpc.secure_channel(address, tls.channel_credentials(), options=options)
        )

    def __repr__(self) -> str:
        return f"<RawNode {self.address}>"

    def __enter__(self) -> RawNode:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def call(self, path: str, request: Message | bytes) -> Answer:
        """Send `request` (a message, or raw bytes sent as they are) to `path`."""
        body = request if isinstance(request, bytes) else request.SerializeToString()
        method = self.channel.unary_unary(path)
        try:
            response: bytes = method(body, timeout=self.timeout)
        except grpc.RpcError as error:
            return refused(error)
        return Answer(grpc.StatusCode.OK, "", response)

    def first(self, path: str, request: Message | bytes) -> Answer:
        """A server-streaming call: its first message (or its status), then cancelled."""
        body = request if isinstance(request, bytes) else request.SerializeToString()
        stream = self.channel.unary_stream(path)(body, timeout=self.timeout)
        try:
            response: bytes = next(stream)
        except StopIteration:
            return Answer(stream.code(), stream.details() or "")
        except grpc.RpcError as error:
            return refused(error)
        finally:
            stream.cancel()
        return Answer(grpc.StatusCode.OK, "", response)

    def send(self, method: Method, request: Message | bytes) -> Answer:
        if method.server_streaming:
            return self.first(method.path, request)
        return self.call(method.path, request)

    def tmem(self, method: str, /, **fields: Any) -> Answer:
        """`Tmem/<method>` with a request built from `fields`."""
        request = getattr(tmem_pb2, f"{method}Request")(**fields)
        return self.call(f"/ramster.api.v1.Tmem/{method}", request)

    def admin(self, method: str, /, **fields: Any) -> Answer:
        """`Admin/<method>` (unary) with a request built from `fields`."""
        request = getattr(admin_pb2, f"{method}Request")(**fields)
        return self.call(f"/ramster.api.v1.Admin/{method}", request)


def remote_page(
    pool_uid: int, oid: int, index: int, data: bytes, version: int, persistent: bool = True
) -> peer_pb2.RemotePage:
    """Page `data` as an origin ships it to a holder: packed, with its checksum."""
    packed = pack_page(data)
    encoding = (
        tmem_pb2.PAGE_ENCODING_SAME_FILLED if packed.same_filled else tmem_pb2.PAGE_ENCODING_LZ4
    )
    return peer_pb2.RemotePage(
        pool=pool_uid,
        persistent=persistent,
        oid=tmem_pb2.Oid(word0=oid),
        index=index,
        version=version,
        data=packed.payload,
        encoding=encoding,
        page_size=packed.page_size,
        checksum=zlib.crc32(packed.payload),
    )
