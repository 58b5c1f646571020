"""`PeerRelay`: a Peer service that relays an origin's calls to a real node, as raw bytes.

It stands between a `PeerLink` and a node to show what the link sends and to play a holder of
an earlier release: with `old`, its Hello announces no lean page calls (nor puts without
checksums) and it serves none (UNIMPLEMENTED, as a node that does not know them), so the link
must use the per-page calls; with `checked_puts` only the puts without checksums go
unannounced (a release that serves the lean calls but knows no such put). With `tls` (a node's
certificate) it serves and calls over TLS with that certificate, as the node it stands in
front of and as the origin behind it. It records the methods it was called with (`calls`) and
their requests (`requests`), and with `damage` flips the first byte of the first page of every
get's answer (the checksum left as the node sent it), as a corrupt copy on the way would; with
`zero_checksums` it sets every checksum of a get's answer to 0 (the pages left as they are), as
a holder that sends no checksums, or forges them, would. A `grpc.aio` server on a free loopback
port, run on the caller's event loop.

Not here: relaying bytes below gRPC (`tests.support.delay_proxy`, `tests.support.tcp_proxy`).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import grpc

from ramster.api.v1 import peer_pb2
from ramster.wire.tls import TLS

SERVICE = "ramster.api.v1.Peer"
LEAN = ("PutPageBatch", "GetPageBatch", "FlushPageBatch")
RELAYED = ("Hello", "PutPages", "GetPages", "FlushPages", "FlushObjects", *LEAN)
"""The calls relayed: the unary calls of a Hello, a put, a get and a page or object flush
(others are UNIMPLEMENTED)."""


class PeerRelay:
    """Relays unary Peer calls made to `address` to the node at `target`."""

    def __init__(
        self,
        target: str,
        *,
        old: bool = False,
        damage: bool = False,
        zero_checksums: bool = False,
        checked_puts: bool = False,
        tls: TLS | None = None,
    ) -> None:
        self.old = old
        self.checked_puts = checked_puts
        self._tls = tls
        self.damage = damage
        self.zero_checksums = zero_checksums
        self.calls: list[str] = []
        self.requests: list[bytes] = []
        self.address = ""
        self._target = target
        served = [m for m in RELAYED if not (old and m in LEAN)]
        handlers = {m: grpc.unary_unary_rpc_method_handler(self._relaying(m)) for m in served}
        self._server = grpc.aio.server()
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, handlers),)
        )
        self._channel: grpc.aio.Channel | None = None

    async def __aenter__(self) -> PeerRelay:
        if self._tls is None:
            port = self._server.add_insecure_port("127.0.0.1:0")
            self._channel = grpc.aio.insecure_channel(self._target)
        else:
            port = self._server.add_secure_port("127.0.0.1:0", self._tls.server_credentials())
            self._channel = grpc.aio.secure_channel(self._target, self._tls.channel_credentials())
        self.address = f"127.0.0.1:{port}"
        await self._server.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._server.stop(None)
        if self._channel is not None:
            await self._channel.close(None)

    def _relaying(self, method: str) -> Any:
        async def relay(request: bytes, context: Any) -> bytes:
            return await self._relay(method, request, context)

        return relay

    async def _relay(self, method: str, request: bytes, context: Any) -> bytes:
        self.calls.append(method)
        self.requests.append(request)
        assert self._channel is not None
        path = f"/{SERVICE}/{method}"
        try:
            answer: bytes = await self._channel.unary_unary(path)(request, timeout=10.0)
        except grpc.aio.AioRpcError as error:
            await context.abort(error.code(), error.details() or "")
            raise  # abort raises; this keeps the type checker told
        if method == "Hello" and (self.old or self.checked_puts):
            hello = peer_pb2.HelloResponse.FromString(answer)
            if self.old:
                hello.ClearField("page_batches")
                hello.ClearField("flush_batches")
            hello.ClearField("sealed_puts_unchecked")
            return hello.SerializeToString()
        if not (self.damage or self.zero_checksums):
            return answer
        if method == "GetPageBatch":
            batch = peer_pb2.PeerGetBatchResponse.FromString(answer)
            if self.damage:
                batch.data = _flipped(batch.data)
            self._forge(batch.checksums)
            return batch.SerializeToString()
        if method == "GetPages":
            pages = peer_pb2.PeerGetResponse.FromString(answer)
            if self.damage:
                first = list(pages.found).index(True)
                pages.data[first] = _flipped(pages.data[first])
            self._forge(pages.checksums)
            return pages.SerializeToString()
        return answer

    def _forge(self, checksums: Any) -> None:
        """Zero every checksum of a get's answer, with `zero_checksums`."""
        if self.zero_checksums:
            checksums[:] = [0] * len(checksums)


def _flipped(data: bytes) -> bytes:
    return bytes([data[0] ^ 0xFF]) + data[1:]
