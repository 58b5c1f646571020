"""Calling a RAMster service from Python: one unary call, typed, with its error translated once.

The client library (`ramster.client._transport`) and the peer links (`ramster.remote.links`) both
call through `unary_call`; a failed call is raised as the `RamsterError` of its status
(`ramster.rpc.status`), so `grpc.aio.AioRpcError` never escapes either.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, Self, TypeVar

import grpc

from ramster.errors import Unavailable
from ramster.rpc.status import error_from_rpc


class Message(Protocol):
    def SerializeToString(self, *, deterministic: bool = ...) -> bytes: ...


class Response(Protocol):
    @classmethod
    def FromString(cls, data: bytes) -> Self: ...


M = TypeVar("M", bound=Response)


def serialize(message: Message) -> bytes:
    return message.SerializeToString()


async def unary_call(
    channel: grpc.aio.Channel,
    method: str,
    request: Message,
    response_type: type[M],
    timeout: float | None,
) -> M:
    """Call ``/ramster.api.v1.<method>`` (e.g. ``Tmem/PutPages``) with a deadline of `timeout`."""
    call = channel.unary_unary(
        f"/ramster.api.v1.{method}",
        request_serializer=serialize,
        response_deserializer=response_type.FromString,
    )
    try:
        response: M = await call(request, timeout=timeout)
    except grpc.aio.AioRpcError as error:
        raise error_from_rpc(error.code(), error.details(), method) from None
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # our caller was cancelled: let it unwind
        # grpc cancels a call whose channel was closed under it: that is an unreachable peer.
        raise Unavailable(f"{method}: the channel was closed during the call") from None
    return response


async def stream_call(
    channel: grpc.aio.Channel,
    method: str,
    request: Message,
    response_type: type[M],
    timeout: float | None,
) -> list[M]:
    """Every message of the server stream ``/ramster.api.v1.<method>``, within `timeout`."""
    call = channel.unary_stream(
        f"/ramster.api.v1.{method}",
        request_serializer=serialize,
        response_deserializer=response_type.FromString,
    )
    try:
        return [message async for message in call(request, timeout=timeout)]
    except grpc.aio.AioRpcError as error:
        raise error_from_rpc(error.code(), error.details(), method) from None
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        raise Unavailable(f"{method}: the channel was closed during the call") from None
