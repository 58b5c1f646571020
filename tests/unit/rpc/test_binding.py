"""Errors become statuses once, in `ramster.rpc.binding`: a refusal with its message and details,
any other exception INTERNAL (never UNKNOWN), with details too."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from ramster.api.v1 import tmem_pb2
from ramster.errors import InvalidArgument
from ramster.rpc.binding import unary


class Aborted(Exception):
    """What grpc.aio's `abort` raises to end the call."""


class AbortedContext:
    """The part of a servicer context a refusal uses: `abort`, recorded."""

    def __init__(self) -> None:
        self.ended: tuple[grpc.StatusCode, str, status_pb2.Status] | None = None

    async def abort(self, code: grpc.StatusCode, details: str, trailer: Any) -> None:
        [(key, value)] = trailer
        assert key == "grpc-status-details-bin"
        self.ended = (code, details, status_pb2.Status.FromString(value))
        raise Aborted


def served(error: Exception) -> tuple[grpc.StatusCode, str, list[Any]]:
    """How a NewPool whose handler raises `error` ends: its code, message and details."""

    async def handler(request: tmem_pb2.NewPoolRequest) -> tmem_pb2.NewPoolResponse:
        raise error

    method = unary("Tmem/NewPool", handler, tmem_pb2.NewPoolRequest.FromString)
    context = AbortedContext()
    with pytest.raises(Aborted):
        asyncio.run(method.unary_unary(b"", context))
    assert context.ended is not None
    code, message, status = context.ended
    details: list[Any] = []
    for detail in status.details:
        for kind in (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest):
            if detail.Is(kind.DESCRIPTOR):
                details.append(kind())
                detail.Unpack(details[-1])
    assert (status.code, status.message, len(details)) == (
        code.value[0],
        message,
        len(status.details),
    )
    return code, message, details


def test_a_refusal_ends_the_call_with_its_status_message_and_details() -> None:
    error = InvalidArgument.field("page_size", 1000, "a power of two in 512..65536")
    violation = error_details_pb2.BadRequest.FieldViolation(
        field="page_size", description=error.message
    )
    assert served(error) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "page_size 1000 is invalid: expected a power of two in 512..65536",
        [
            error_details_pb2.ErrorInfo(reason="INVALID_ARGUMENT", domain="ramster.io"),
            error_details_pb2.BadRequest(field_violations=[violation]),
        ],
    )


def test_a_fault_ends_the_call_internal_with_its_reason() -> None:
    assert served(RuntimeError("a bug")) == (
        grpc.StatusCode.INTERNAL,
        "Tmem/NewPool: internal error (node log)",
        [error_details_pb2.ErrorInfo(reason="INTERNAL_ERROR", domain="ramster.io")],
    )
