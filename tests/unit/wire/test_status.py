"""The details a refusal carries (`ramster.wire.status.rich_status`) and what a caller raises from
them (`error_details`, `error_from_rpc`), through the trailer as gRPC carries it."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2, status_pb2

from ramster.errors import InvalidArgument, NotFound, PoolNotFound, RamsterError, Unauthenticated
from ramster.trust.tokens import TokenRefused
from ramster.wire.status import error_details, error_from_rpc, rich_status

Trailer = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class EndedCall:
    """A failed call as a caller sees it (the part of `grpc.Call` the details are read from)."""

    status: grpc.StatusCode
    message: str
    trailer: Trailer

    def code(self) -> grpc.StatusCode:
        return self.status

    def details(self) -> str:
        return self.message

    def trailing_metadata(self) -> Trailer:
        return self.trailer


def ended(error: RamsterError) -> EndedCall:
    """The call a node ended with `error`, as its caller receives it."""
    status = rich_status(error)
    return EndedCall(status.code, status.details, tuple(status.trailing_metadata))


def raised(call: EndedCall) -> RamsterError:
    return error_from_rpc(call.code(), call.details(), "Tmem/PutPages", *error_details(call))


def test_a_bad_field_travels_with_its_reason_and_its_name() -> None:
    error = InvalidArgument.field("pages[1].encoding", 3, "PAGE_ENCODING_LZ4")
    call = ended(error)
    assert (call.code(), call.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "pages[1].encoding 3 is invalid: expected PAGE_ENCODING_LZ4",
    )
    [(key, value)] = call.trailing_metadata()
    status = status_pb2.Status.FromString(value)
    info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
    assert (key, status.code, status.message, len(status.details)) == (
        "grpc-status-details-bin",
        3,
        error.message,
        2,
    )
    assert status.details[0].Unpack(info) and status.details[1].Unpack(bad)
    assert info == error_details_pb2.ErrorInfo(reason="INVALID_ARGUMENT", domain="ramster.io")
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("pages[1].encoding", error.message)
    ]
    back = raised(call)
    assert (type(back), back.message, getattr(back, "field_name", None)) == (
        InvalidArgument,
        error.message,
        "pages[1].encoding",
    )


def test_a_caller_raises_the_class_the_reason_names_if_it_travels_as_the_code() -> None:
    missing = raised(ended(PoolNotFound("pool_id 7 does not exist")))
    assert (type(missing), missing.message) == (PoolNotFound, "pool_id 7 does not exist")
    # A class of the node's own that the caller does not know: the class of its status.
    refused = TokenRefused("abc", "expired", "at 0")
    token = raised(ended(refused))
    assert (type(token), token.message) == (Unauthenticated, "token 'abc' refused: expired (at 0)")
    # A reason that contradicts the code is not believed.
    lying = ended(PoolNotFound("pool_id 7 does not exist"))
    lying = EndedCall(grpc.StatusCode.INVALID_ARGUMENT, lying.message, lying.trailer)
    assert (error_details(lying), type(raised(lying))) == ((None, None), InvalidArgument)


def test_details_that_contradict_the_message_or_come_from_elsewhere_count_as_none() -> None:
    call = ended(NotFound("pool_id 7 does not exist"))
    assert error_details(call) == ("NOT_FOUND", None)
    assert error_details(EndedCall(call.status, "another message", call.trailer)) == (None, None)
    assert error_details(EndedCall(call.status, call.message, ())) == (None, None)
    foreign = status_pb2.Status(code=5, message=call.message)
    foreign.details.add().Pack(error_details_pb2.ErrorInfo(reason="NOT_FOUND", domain="other"))
    trailer = (("grpc-status-details-bin", foreign.SerializeToString()),)
    assert error_details(EndedCall(call.status, call.message, trailer)) == (None, None)


def test_the_reason_is_the_class_name_in_upper_snake_case() -> None:
    assert [cls.error_reason() for cls in (InvalidArgument, PoolNotFound, TokenRefused)] == [
        "INVALID_ARGUMENT",
        "POOL_NOT_FOUND",
        "TOKEN_REFUSED",
    ]
