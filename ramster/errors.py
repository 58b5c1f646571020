"""The errors RAMster raises, in one hierarchy shared by the core, the node and the client.

Each class names the one gRPC status it travels as (the table lives in the RPC layer, the only code
that knows gRPC) and whether retrying the same call may succeed. Messages name the field, the value
received and what was expected, so a person can act on them.
"""

from __future__ import annotations

import re
from typing import ClassVar


class RamsterError(Exception):
    """Base of every error RAMster raises on purpose."""

    retriable: ClassVar[bool] = False
    status: ClassVar[str] = "INTERNAL"
    """The name of the gRPC status code this error travels as."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @classmethod
    def error_reason(cls) -> str:
        """What a program reads to tell this error from others of its status (the ErrorInfo
        reason a node sends beside the message): the class name in UPPER_SNAKE_CASE, e.g.
        POOL_NOT_FOUND."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).upper()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class InvalidArgument(RamsterError):
    """A request field is out of range or malformed (INVALID_ARGUMENT); `field_name` is the
    field's path in the request (e.g. ``pages[1].encoding``) when one field is at fault, which
    the node sends beside the message (a BadRequest field violation)."""

    status = "INVALID_ARGUMENT"

    def __init__(self, message: str, field_name: str | None = None) -> None:
        super().__init__(message)
        self.field_name = field_name

    @classmethod
    def field(cls, name: str, value: object, expected: str) -> InvalidArgument:
        return cls(f"{name} {shown(value)} is invalid: expected {expected}", name)


SHOWN_CHARACTERS = 64
"""How much of a caller's string (or bytes) an error or a log line shows."""
SHOWN_REPR = 128
"""How much of the repr of any other value an error shows: those are bounded by their type (an
oid of three 64-bit words takes 66 characters) and shown whole; this only stops a container."""


def shown(value: object) -> str:
    """`repr(value)` for an error or a log line, with a caller's string or bytes cut to its
    first `SHOWN_CHARACTERS` and its length: a status message must stay small (gRPC drops one
    over 16 KiB), a log line short, and neither should carry much of what a caller chose. The
    one place such values are cut."""
    if isinstance(value, str | bytes) and len(value) > SHOWN_CHARACTERS:
        unit = "characters" if isinstance(value, str) else "bytes"
        return f"{value[:SHOWN_CHARACTERS]!r}... ({len(value)} {unit})"
    text = repr(value)
    if len(text) <= SHOWN_REPR:
        return text
    return f"{text[:SHOWN_REPR]}... ({len(text)} characters)"


class NotFound(RamsterError):
    """The thing named does not exist (NOT_FOUND)."""

    status = "NOT_FOUND"


class PoolNotFound(NotFound):
    """The pool id is unknown to this client, or the pool was destroyed."""


class ResourceExhausted(RamsterError):
    """A limit was reached: too many pools or clients, or the store is full (RESOURCE_EXHAUSTED)."""

    status = "RESOURCE_EXHAUSTED"


class FailedPrecondition(RamsterError):
    """The request is valid but does not fit the current state (FAILED_PRECONDITION)."""

    status = "FAILED_PRECONDITION"


class DictionaryRetired(FailedPrecondition):
    """A packed page names a zstd dictionary its pool had and dropped when a newer one took
    over (the node retrained): the page was packed as the node advised before; the caller sends
    it again raw, as the client library does."""


class Unavailable(RamsterError):
    """The node cannot serve now: starting, shutting down, or unreachable (UNAVAILABLE)."""

    retriable = True
    status = "UNAVAILABLE"


class DeadlineExceeded(RamsterError):
    """The call did not finish within its deadline (DEADLINE_EXCEEDED)."""

    retriable = True
    status = "DEADLINE_EXCEEDED"


class Unauthenticated(RamsterError):
    """The caller did not prove who it is: no valid certificate or token (UNAUTHENTICATED)."""

    status = "UNAUTHENTICATED"


class PermissionDenied(RamsterError):
    """The caller proved who it is, but that identity may not make this call
    (PERMISSION_DENIED)."""

    status = "PERMISSION_DENIED"


class InternalError(RamsterError):
    """A fault inside RAMster; the node's log has the details (INTERNAL)."""


ERRORS: tuple[type[RamsterError], ...] = (
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    FailedPrecondition,
    Unavailable,
    DeadlineExceeded,
    Unauthenticated,
    PermissionDenied,
    InternalError,
)
"""One class per status code: what a status received from a node is raised as."""
