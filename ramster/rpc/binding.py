"""Binding typed async handlers to gRPC methods, with errors translated once, here.

Generated gRPC stubs are untyped; instead each service lists its methods with their message
types. A handler raises `RamsterError` for refusals; the wrapper answers with the matching
status and message. Anything else is a fault: logged with its traceback, answered INTERNAL.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc

from ramster.errors import RamsterError
from ramster.rpc.status import status_of

log = logging.getLogger("ramster.rpc")


class Message(Protocol):
    def SerializeToString(self, *, deterministic: bool = ...) -> bytes: ...


Req = TypeVar("Req")
Resp = TypeVar("Resp", bound=Message)


def unary(
    method: str,
    handler: Callable[[Req], Awaitable[Resp]],
    request_type: Callable[[bytes], Req],
) -> grpc.RpcMethodHandler[Any, Any]:
    """A unary method: `request_type` parses the request bytes (a message's FromString)."""

    async def call(request: Req, context: grpc.aio.ServicerContext[Req, Resp]) -> Resp:
        try:
            return await handler(request)
        except RamsterError as error:
            await context.abort(status_of(error), error.message)
        except Exception:
            log.exception("%s failed", method)
            await context.abort(grpc.StatusCode.INTERNAL, f"{method}: internal error (node log)")
        raise AssertionError("abort returned")

    return grpc.unary_unary_rpc_method_handler(
        call, request_deserializer=request_type, response_serializer=_serialize
    )


def server_stream(
    method: str,
    handler: Callable[[Req], AsyncIterator[Resp]],
    request_type: Callable[[bytes], Req],
) -> grpc.RpcMethodHandler[Any, Any]:
    """A server-streaming method whose handler is an async generator."""

    async def call(
        request: Req, context: grpc.aio.ServicerContext[Req, Resp]
    ) -> AsyncIterator[Resp]:
        try:
            async for response in handler(request):
                yield response
        except RamsterError as error:
            await context.abort(status_of(error), error.message)
        except Exception:
            log.exception("%s failed", method)
            await context.abort(grpc.StatusCode.INTERNAL, f"{method}: internal error (node log)")

    return grpc.unary_stream_rpc_method_handler(
        call, request_deserializer=request_type, response_serializer=_serialize
    )


def service(
    name: str, methods: dict[str, grpc.RpcMethodHandler[Any, Any]]
) -> grpc.GenericRpcHandler[Any, Any]:
    return grpc.method_handlers_generic_handler(name, methods)


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data
