"""The one table between RAMster errors and gRPC status codes, used by the node and the client.

The node answers a `RamsterError` with its status and message, anything unexpected with INTERNAL
(never UNKNOWN) after logging it (`ramster.rpc.binding`); a caller raises the class of the status
it received (`ramster.wire.calls`), so an `AioRpcError` never reaches application code.
"""

from __future__ import annotations

import grpc

from ramster.errors import (
    ERRORS,
    DeadlineExceeded,
    InternalError,
    RamsterError,
    ResourceExhausted,
    Unavailable,
)

ERROR_BY_STATUS: dict[grpc.StatusCode, type[RamsterError]] = {
    grpc.StatusCode[cls.status]: cls for cls in ERRORS
}
# Statuses gRPC itself produces, mapped onto the nearest class.
ERROR_BY_STATUS[grpc.StatusCode.CANCELLED] = Unavailable
ERROR_BY_STATUS[grpc.StatusCode.ABORTED] = Unavailable
ERROR_BY_STATUS[grpc.StatusCode.OUT_OF_RANGE] = ResourceExhausted


def status_of(error: RamsterError) -> grpc.StatusCode:
    """The status a node answers `error` with."""
    return grpc.StatusCode[error.status]


def error_from_rpc(code: grpc.StatusCode | None, details: str | None, call: str) -> RamsterError:
    """The RamsterError for a failed call `call` that ended with `code` and `details`."""
    cls = ERROR_BY_STATUS.get(code, InternalError) if code is not None else InternalError
    text = details or (code.name if code is not None else "no status")
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded(f"{call}: deadline exceeded ({text})")
    if code is grpc.StatusCode.UNAVAILABLE:
        return Unavailable(f"{call}: node unavailable ({text})")
    return cls(text)
