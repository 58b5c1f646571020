"""Bearer tokens: an identity the cluster CA's key signed, for callers without a certificate.

Format, version 1: ``rt1.<payload>.<signature>``, both parts base64url without padding. The
payload is compact JSON ``{"role", "name", "iat", "exp"}`` (issued-at and expiry in whole Unix
seconds); the signature is ECDSA P-256 with SHA-256 over the ASCII text ``rt1.<payload>`` (so
the version is signed too), as the 64 bytes r || s. Only ``ramster certs`` holds the CA's key
and signs; a node checks a token with the CA certificate's public key alone.

A refused token raises `TokenRefused` with one of `REASONS`; the message shows at most the first
`SHOWN` characters of the token, so a log line never carries a usable one.

Not here: how a caller sends a token (gRPC metadata, `ramster.rpc`), revocation (a token lives
until it expires: issue short ones, rotate the CA to revoke all).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
from dataclasses import dataclass
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from ramster.errors import InvalidArgument, Unauthenticated
from ramster.trust.identity import Identity, Role, issued_role

PREFIX = "rt1"
SHOWN = 12
"""Characters of a refused token its error shows."""
MAX_TOKEN = 2048
"""Characters in a token: a valid one has about 200."""
SCALAR = 32
"""Bytes of r and of s in a P-256 signature."""

Reason = Literal["malformed", "bad signature", "expired", "unknown role"]
REASONS: tuple[Reason, ...] = ("malformed", "bad signature", "expired", "unknown role")


class TokenRefused(Unauthenticated):
    """A token that does not prove an identity; `reason` is one of `REASONS`."""

    def __init__(self, token: str, reason: Reason, detail: str) -> None:
        shown = repr(token[:SHOWN]) + ("..." if len(token) > SHOWN else "")
        super().__init__(f"token {shown} refused: {reason} ({detail})")
        self.reason = reason


def sign_token(
    ca_key: ec.EllipticCurvePrivateKey,
    identity: Identity,
    *,
    now: datetime.datetime,
    days: int,
) -> str:
    """A token for `identity`, issued at `now` and valid for `days`, signed with `ca_key`."""
    if identity.role is Role.LOCAL:
        raise InvalidArgument.field("role", identity.role.value, "node, client or admin")
    issued = int(now.timestamp())
    claims = {
        "role": identity.role.value,
        "name": identity.name,
        "iat": issued,
        "exp": issued + days * 86400,
    }
    payload = _encode(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    signed = f"{PREFIX}.{payload}"
    r, s = decode_dss_signature(ca_key.sign(signed.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signed}.{_encode(r.to_bytes(SCALAR, 'big') + s.to_bytes(SCALAR, 'big'))}"


def verify_token(
    token: str, ca_public: ec.EllipticCurvePublicKey, now: datetime.datetime
) -> Identity:
    """The identity `token` proves at `now`, checked against the CA's public key `ca_public`;
    `TokenRefused` otherwise. The signature is checked before anything in the payload is read."""
    return verify_token_until(token, ca_public, now)[0]


def verify_token_until(
    token: str, ca_public: ec.EllipticCurvePublicKey, now: datetime.datetime
) -> tuple[Identity, int]:
    """As `verify_token`, with the token's expiry (Unix seconds): a server that keeps tokens it
    checked need not check the signature again before then."""
    if not isinstance(token, str) or not token.isascii() or len(token) > MAX_TOKEN:
        raise TokenRefused(
            str(token), "malformed", f"expected at most {MAX_TOKEN} ASCII characters"
        )
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise TokenRefused(token, "malformed", f"expected {PREFIX}.<payload>.<signature>")
    payload, signature = _decode(token, parts[1], "payload"), _decode(token, parts[2], "signature")
    if len(signature) != 2 * SCALAR:
        raise TokenRefused(token, "malformed", f"signature of {len(signature)} bytes, expected 64")
    der = encode_dss_signature(
        int.from_bytes(signature[:SCALAR], "big"), int.from_bytes(signature[SCALAR:], "big")
    )
    try:
        ca_public.verify(der, f"{PREFIX}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise TokenRefused(token, "bad signature", "not signed by this cluster's CA") from None
    claims = _claims(token, payload)
    if claims.expires <= now.timestamp():
        expired = datetime.datetime.fromtimestamp(claims.expires, datetime.UTC).isoformat()
        raise TokenRefused(token, "expired", f"expired {expired}")
    try:
        role = issued_role(claims.role)
    except InvalidArgument:
        raise TokenRefused(token, "unknown role", "expected node, client or admin") from None
    try:
        return Identity(role, claims.name), claims.expires
    except InvalidArgument as error:
        raise TokenRefused(token, "malformed", error.message) from None


@dataclass(frozen=True, slots=True)
class _Claims:
    role: str
    name: str
    expires: int


def _claims(token: str, payload: bytes) -> _Claims:
    try:
        claims = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        claims = None
    if (
        not isinstance(claims, dict)
        or not all(isinstance(claims.get(field), str) for field in ("role", "name"))
        or not all(type(claims.get(field)) is int for field in ("iat", "exp"))
    ):
        raise TokenRefused(token, "malformed", "payload is not {role, name, iat, exp}")
    return _Claims(claims["role"], claims["name"], claims["exp"])


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _decode(token: str, part: str, what: str) -> bytes:
    try:
        return base64.b64decode(part + "=" * (-len(part) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise TokenRefused(token, "malformed", f"{what} is not base64url") from None
