"""The one table between RAMster errors and gRPC status codes, used by the node and the client.

The node answers a `RamsterError` with its status and message, anything unexpected with INTERNAL
(never UNKNOWN) after logging it (`ramster.rpc.binding`); a caller raises the class of the status
it received (`ramster.wire.calls`), so an `AioRpcError` never reaches application code.

Beside the message, for programs, a refusal carries a `google.rpc.Status` (gRPC's rich error
model, the ``grpc-status-details-bin`` trailer): an `ErrorInfo` with the error's reason (its
class, e.g. POOL_NOT_FOUND) in the domain ``ramster.io``, and for an INVALID_ARGUMENT that names
one field a `BadRequest` with that field's violation. A caller raises the class the reason
names, with the field, when the details say so.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]
from grpc_status import rpc_status

from ramster.errors import (
    ERRORS,
    DeadlineExceeded,
    DictionaryRetired,
    InternalError,
    InvalidArgument,
    PoolNotFound,
    RamsterError,
    ResourceExhausted,
    Unavailable,
)

DOMAIN = "ramster.io"
"""The ErrorInfo domain of RAMster's reasons."""

ERROR_BY_STATUS: dict[grpc.StatusCode, type[RamsterError]] = {
    grpc.StatusCode[cls.status]: cls for cls in ERRORS
}
# Statuses gRPC itself produces, mapped onto the nearest class.
ERROR_BY_STATUS[grpc.StatusCode.CANCELLED] = Unavailable
ERROR_BY_STATUS[grpc.StatusCode.ABORTED] = Unavailable
ERROR_BY_STATUS[grpc.StatusCode.OUT_OF_RANGE] = ResourceExhausted


RAISED_BY_REASON: tuple[type[RamsterError], ...] = (*ERRORS, PoolNotFound, DictionaryRetired)
ERROR_BY_REASON: dict[str, type[RamsterError]] = {
    cls.error_reason(): cls for cls in RAISED_BY_REASON
}
"""The classes a caller raises by the reason a node sent; any other reason (a class of the
node's own, e.g. TOKEN_REFUSED) is raised as the class of its status."""


def status_of(error: RamsterError) -> grpc.StatusCode:
    """The status a node answers `error` with."""
    return grpc.StatusCode[error.status]


def rich_status(error: RamsterError) -> grpc.Status:
    """The status a node answers `error` with: its code and message, and its details in the
    trailer (an ErrorInfo, and a BadRequest for an InvalidArgument that names its field)."""
    code = status_of(error)
    status = status_pb2.Status(code=code.value[0], message=error.message)
    status.details.add().Pack(
        error_details_pb2.ErrorInfo(reason=error.error_reason(), domain=DOMAIN)
    )
    if isinstance(error, InvalidArgument) and error.field_name is not None:
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=error.field_name, description=error.message
        )
        status.details.add().Pack(error_details_pb2.BadRequest(field_violations=[violation]))
    answer: grpc.Status = rpc_status.to_status(status)
    return answer


def error_details(call: Any) -> tuple[str | None, str | None]:
    """(reason, field) from the rich status of a failed call (a `grpc.Call` or an
    `AioRpcError`), each None where it sends none; a status whose details do not parse, or
    contradict its code and message, counts as none."""
    try:
        status = rpc_status.from_call(call)
    except (ValueError, DecodeError):
        return None, None
    reason = field = None
    for detail in status.details if status is not None else ():
        info, bad_request = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
        if detail.Unpack(info) and info.domain == DOMAIN:
            reason = info.reason
        elif detail.Unpack(bad_request) and len(bad_request.field_violations) == 1:
            field = bad_request.field_violations[0].field
    return reason, field


def error_from_rpc(
    code: grpc.StatusCode | None,
    details: str | None,
    call: str,
    reason: str | None = None,
    field: str | None = None,
) -> RamsterError:
    """The RamsterError for a failed call `call` that ended with `code` and `details`: the class
    `reason` names if it travels as `code` (else the class of `code`), an InvalidArgument with
    its `field`."""
    cls = ERROR_BY_STATUS.get(code, InternalError) if code is not None else InternalError
    text = details or (code.name if code is not None else "no status")
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded(f"{call}: deadline exceeded ({text})")
    if code is grpc.StatusCode.UNAVAILABLE:
        return Unavailable(f"{call}: node unavailable ({text})")
    named = ERROR_BY_REASON.get(reason or "")
    if named is not None and issubclass(named, cls):
        cls = named
    if issubclass(cls, InvalidArgument):
        return cls(text, field)
    return cls(text)
