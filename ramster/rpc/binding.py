"""Binding typed async handlers to gRPC methods, with errors translated once, here.

Generated gRPC stubs are untyped; instead each service lists its methods with their message
types. A handler raises `RamsterError` for refusals; the wrapper answers with the matching
status and message, and the details beside them (`refuse`). Anything else is a fault: logged
with its traceback, answered INTERNAL.
A handler that must know whether its answer can still reach the caller (a get that frees the
pages it answers) is bound with `unary_watched` and asks its `Call`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, Protocol, TypeVar

import grpc
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]

from ramster.errors import InternalError, InvalidArgument, RamsterError
from ramster.wire.calls import Message, serialize
from ramster.wire.status import rich_status

log = logging.getLogger("ramster.rpc")


Req = TypeVar("Req")
Resp = TypeVar("Resp", bound=Message)


class Call(Protocol):
    """The call a handler of `unary_watched` serves."""

    def alive(self) -> bool:
        """Whether an answer sent now can still reach the caller: the call was not cancelled
        and its deadline has not passed."""
        ...


class _ServedCall:
    def __init__(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        self._context = context

    def alive(self) -> bool:
        if self._context.cancelled():
            return False
        remaining = self._context.time_remaining()
        return remaining is None or remaining > 0


def unary(
    method: str,
    handler: Callable[[Req], Awaitable[Resp]],
    request_type: Callable[[bytes], Req],
) -> grpc.RpcMethodHandler[Any, Any]:
    """A unary method: `request_type` parses the request bytes (a message's FromString)."""
    return unary_watched(method, lambda request, _: handler(request), request_type)


def unary_watched(
    method: str,
    handler: Callable[[Req, Call], Awaitable[Resp]],
    request_type: Callable[[bytes], Req],
) -> grpc.RpcMethodHandler[Any, Any]:
    """A unary method whose handler also gets the `Call` it serves."""

    parse = _parser(request_type)

    async def call(request: bytes, context: grpc.aio.ServicerContext[Req, Resp]) -> Resp:
        try:
            return await handler(parse(request), _ServedCall(context))
        except RamsterError as error:
            await refuse(context, error)
        except Exception:
            log.exception("%s failed", method)
            await refuse(context, InternalError(f"{method}: internal error (node log)"))

    return grpc.unary_unary_rpc_method_handler(call, response_serializer=serialize)


def server_stream(
    method: str,
    handler: Callable[[Req], AsyncIterator[Resp]],
    request_type: Callable[[bytes], Req],
) -> grpc.RpcMethodHandler[Any, Any]:
    """A server-streaming method whose handler is an async generator."""

    parse = _parser(request_type)

    async def call(
        request: bytes, context: grpc.aio.ServicerContext[Req, Resp]
    ) -> AsyncIterator[Resp]:
        try:
            async for response in handler(parse(request)):
                yield response
        except RamsterError as error:
            await refuse(context, error)
        except Exception:
            log.exception("%s failed", method)
            await refuse(context, InternalError(f"{method}: internal error (node log)"))

    return grpc.unary_stream_rpc_method_handler(call, response_serializer=serialize)


async def refuse(context: grpc.aio.ServicerContext[Any, Any], error: RamsterError) -> NoReturn:
    """End the call being served with `error`: its status and message, and its details (the
    google.rpc.Status of `ramster.wire.status.rich_status`) in the trailer."""
    status = rich_status(error)
    await context.abort(status.code, status.details, status.trailing_metadata)
    raise AssertionError("abort returned")


def service(
    name: str, methods: dict[str, grpc.RpcMethodHandler[Any, Any]]
) -> grpc.GenericRpcHandler[Any, Any]:
    return grpc.method_handlers_generic_handler(name, methods)


def _parser(request_type: Callable[[bytes], Req]) -> Callable[[bytes], Req]:
    """`request_type` (a message's FromString) refusing bytes that do not parse, inside the
    handler's error translation: gRPC would answer a deserializer's exception UNKNOWN."""
    name = request_type.__self__.DESCRIPTOR.full_name  # type: ignore[attr-defined]

    def parse(data: bytes) -> Req:
        try:
            return request_type(data)
        except DecodeError:
            raise InvalidArgument(
                f"request ({len(data)} bytes) is not a valid {name} message"
            ) from None

    return parse
