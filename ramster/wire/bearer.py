"""Bearer tokens on the wire, as both ends handle them: where a call carries one, and how a
client loads one.

A caller proves its identity with a token (``ramster certs issue DIR ROLE NAME --token`` writes
``NAME.token``) in the call's metadata, as HTTP does: ``authorization: Bearer rt1...``. The
client library takes the token itself or the path of its file (`load_token`); the node reads it
back with `bearer_token` and checks it (`ramster.trust.tokens`, `ramster.rpc.caller`). A token is
a credential: no message here shows more than its first characters.

Not here: the token's format and signature (`ramster.trust.tokens`), who a caller is
(`ramster.rpc.caller`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ramster.errors import InvalidArgument, Unauthenticated

METADATA_KEY = "authorization"
"""The metadata key of a token (gRPC metadata keys are lowercase)."""
SCHEME = "Bearer"
ENVIRONMENT = "RAMSTER_TOKEN"
"""The variable the command line reads a token file's path from."""
TOKEN_PREFIX = "rt1."
"""How every token starts (`ramster.trust.tokens`): a string that does not is a file's path."""
MAX_TOKEN_FILE = 4096
"""Bytes of a token file read at most: a token has about 200."""


def load_token(token: str | os.PathLike[str]) -> str:
    """The token `token` is (a string starting with ``rt1.``) or that the file at path `token`
    holds; `InvalidArgument` naming the field if neither."""
    if isinstance(token, str) and token.startswith(TOKEN_PREFIX):
        return _check(token, "token")
    if not isinstance(token, str | os.PathLike) or not os.fspath(token):
        raise InvalidArgument.field("token", token, "a token (rt1...) or the path of a .token file")
    path = Path(token)
    try:
        with path.open("rb") as file:
            data = file.read(MAX_TOKEN_FILE + 1)
    except OSError as error:
        raise InvalidArgument(f"token file {str(path)!r} is invalid: {error.strerror}") from None
    text = data.decode("ascii", errors="replace").strip()
    if len(data) > MAX_TOKEN_FILE or not text.startswith(TOKEN_PREFIX):
        raise InvalidArgument(
            f"token file {str(path)!r} is invalid: expected one line starting with "
            f"{TOKEN_PREFIX!r}, as `ramster certs issue ... --token` writes"
        )
    return _check(text, f"token file {str(path)!r}")


def metadata_of(token: str | None) -> tuple[tuple[str, str], ...]:
    """The call metadata that carries `token` (none without one)."""
    return () if token is None else ((METADATA_KEY, f"{SCHEME} {token}"),)


def bearer_token(metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
    """The token a call's `metadata` carries, None if it carries none; `Unauthenticated` if its
    authorization is not one ``Bearer`` token."""
    values = [value for key, value in metadata if key == METADATA_KEY]
    if not values:
        return None
    value = values[0]
    text = value.decode("ascii", errors="replace") if isinstance(value, bytes) else value
    scheme, _, token = text.partition(" ")
    if len(values) != 1 or scheme != SCHEME or not token:
        raise Unauthenticated(
            f"call metadata {METADATA_KEY!r} is invalid: expected one '{SCHEME} <token>'"
        )
    return token


def _check(token: str, what: str) -> str:
    # gRPC metadata values are printable ASCII; a token is base64url and dots.
    if not (token.isascii() and token.isprintable()) or " " in token:
        raise InvalidArgument(
            f"{what} is invalid: a token is printable ASCII without spaces "
            f"(starts {token[: len(TOKEN_PREFIX) + 4]!r}...)"
        )
    return token
