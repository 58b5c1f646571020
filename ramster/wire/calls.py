"""Calling a RAMster service from Python: typed unary and server-streaming calls, with a failure
translated once.

The client library (`ramster.client._transport`) and the peer links both call through here; a
failed call is raised as the `RamsterError` of its status (`ramster.wire.status`), so
`grpc.aio.AioRpcError` never escapes either. Not here: serving calls (`ramster.rpc.binding`),
building their messages (`ramster.wire.messages`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Iterator, Sequence
from typing import Protocol, Self, TypeVar

import grpc

from ramster.errors import Unavailable
from ramster.wire.status import error_details, error_from_rpc


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
    metadata: Sequence[tuple[str, str]] = (),
) -> M:
    """Call ``/ramster.api.v1.<method>`` (e.g. ``Tmem/PutPages``) with a deadline of `timeout`,
    sending `metadata` (a bearer token, `ramster.wire.bearer`)."""
    call = channel.unary_unary(
        f"/ramster.api.v1.{method}",
        request_serializer=serialize,
        response_deserializer=response_type.FromString,
    )
    with _translated(method):
        response: M = await call(request, timeout=timeout, metadata=tuple(metadata))
    return response


async def stream_messages(
    channel: grpc.aio.Channel,
    method: str,
    request: Message,
    response_type: type[M],
    timeout: float | None,
    metadata: Sequence[tuple[str, str]] = (),
) -> AsyncGenerator[M, None]:
    """Each message of the server stream ``/ramster.api.v1.<method>`` as it arrives, within
    `timeout` (None: no deadline), sending `metadata`; the call is cancelled when the iteration
    ends early."""
    call = channel.unary_stream(
        f"/ramster.api.v1.{method}",
        request_serializer=serialize,
        response_deserializer=response_type.FromString,
    )(request, timeout=timeout, metadata=tuple(metadata))
    try:
        with _translated(method):
            async for message in call:
                yield message
    finally:
        call.cancel()


async def stream_call(
    channel: grpc.aio.Channel,
    method: str,
    request: Message,
    response_type: type[M],
    timeout: float | None,
) -> list[M]:
    """Every message of the server stream ``/ramster.api.v1.<method>``, within `timeout`."""
    messages = stream_messages(channel, method, request, response_type, timeout)
    async with contextlib.aclosing(messages):
        return [message async for message in messages]


@contextlib.contextmanager
def _translated(method: str) -> Iterator[None]:
    """Raise the failure of call `method` as the `RamsterError` of its status."""
    try:
        yield
    except grpc.aio.AioRpcError as error:
        reason, field = error_details(error)
        raise error_from_rpc(error.code(), error.details(), method, reason, field) from None
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # our caller was cancelled: let it unwind
        # grpc cancels a call whose channel was closed under it: that is an unreachable peer.
        raise Unavailable(f"{method}: the channel was closed during the call") from None
