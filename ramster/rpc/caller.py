"""Who is calling: the `Identity` of the caller of an RPC, from its connection and its token.

Over TLS (every TCP listener of a node with ``--tls-*``) the handshake has already checked the
caller's certificate against the cluster CA, so its subject names the caller
(`ramster.trust.identity`). A caller may instead, or as well, send a bearer token in its call
metadata (``authorization: Bearer rt1...``, `ramster.wire.bearer`) that the CA's key signed; the
node checks it with the CA certificate alone (`ramster.trust.tokens`: nodes never hold the CA's
key). A certificate and a token that name different identities prove nothing: the call is
refused. A connection without TLS and without a token, whether a unix socket, loopback TCP of a
node without TLS, or TCP the operator opened with ``--insecure``, proves nothing: gRPC does not
even tell the server the uid of a unix-socket caller (its auth context says only "insecure"), so
every such caller is `LOCAL`. Who may connect there at all is decided by the socket file's mode
and group, by loopback, or, with ``--insecure``, by the network.

Not here: what an identity may do (`ramster.rpc.access`).
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from ramster.errors import InvalidArgument, Unauthenticated
from ramster.trust.identity import LOCAL, Identity, identity_of_certificate
from ramster.trust.tokens import verify_token_until
from ramster.wire.bearer import bearer_token

CACHED_CERTIFICATES = 1024
"""Callers whose certificate is parsed once, not on every call."""
CACHED_TOKENS = 1024
"""Tokens whose signature is checked once until they expire, not on every call (a check costs
about 0.1 ms, as much as a small call itself)."""


class CallContext(Protocol):
    """What `Callers` reads of a call: grpc.aio's ServicerContext has it."""

    def auth_context(self) -> Mapping[str, Iterable[bytes]]: ...

    def invocation_metadata(self) -> Iterable[tuple[str, str | bytes]] | None: ...


class Callers:
    """Tells who calls a node whose cluster CA has the public key `ca_public` (None: a node
    without TLS, which cannot check a token and refuses one); `clock` gives the time tokens are
    checked at."""

    def __init__(
        self,
        ca_public: ec.EllipticCurvePublicKey | None,
        clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self._ca_public = ca_public
        self._clock = clock
        self._checked: dict[str, tuple[Identity, int]] = {}
        """Tokens whose signature was checked, with their identity and expiry."""

    @classmethod
    def of_ca(cls, ca: Path | None) -> Callers:
        """The callers of a node whose CA certificate is the PEM file `ca` (None: no TLS)."""
        if ca is None:
            return cls(None)
        public = x509.load_pem_x509_certificate(ca.read_bytes()).public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey):
            raise InvalidArgument(
                f"tls ca {str(ca)!r} is invalid: its key is not ECDSA, so it signs no token"
            )
        return cls(public)

    def __repr__(self) -> str:
        return f"<Callers tokens {'checked' if self._ca_public is not None else 'refused'}>"

    def identity(self, context: CallContext) -> Identity:
        """The identity of the caller of the call `context` serves; `Unauthenticated` if its
        certificate or token names none, or they name different ones."""
        certified = caller_identity(context)
        token = bearer_token(context.invocation_metadata() or ())
        if token is None:
            return certified
        if self._ca_public is None:
            raise Unauthenticated(
                "the call carries a token, but this node has no cluster CA to check it with "
                "(it runs without --tls-ca): call it without a token"
            )
        claimed = self._token_identity(token, self._ca_public)
        if certified is not LOCAL and certified != claimed:
            raise Unauthenticated(
                f"the caller's certificate names {certified!r} but its token names "
                f"{claimed!r}: send one, or both of the same identity"
            )
        return claimed

    def _token_identity(self, token: str, ca_public: ec.EllipticCurvePublicKey) -> Identity:
        """The identity `token` proves now: checked once, then taken from the tokens checked
        until it expires (the exact same text, so the same signature)."""
        now = self._clock()
        checked = self._checked.get(token)
        if checked is not None and checked[1] > now.timestamp():
            return checked[0]
        identity, expires = verify_token_until(token, ca_public, now)
        if len(self._checked) >= CACHED_TOKENS:
            self._checked.clear()  # many callers at once: start over rather than grow
        self._checked[token] = identity, expires
        return identity


def caller_identity(context: CallContext) -> Identity:
    """The identity the connection of the call `context` serves proves: its certificate's, or
    `LOCAL` without TLS; `Unauthenticated` if its certificate names none (a certificate of the
    CA without a role, say). Tokens are `Callers.identity`'s."""
    auth = context.auth_context()
    certificates = list(auth.get("x509_pem_cert", ()))
    if certificates:
        return _identity_of(certificates[0])
    if list(auth.get("transport_security_type", ())) == [b"ssl"]:
        # Listeners require a client certificate: reaching here means one was not checked.
        raise Unauthenticated("the caller's TLS connection carries no client certificate")
    return LOCAL


@functools.lru_cache(maxsize=CACHED_CERTIFICATES)
def _identity_of(pem: bytes) -> Identity:
    return identity_of_certificate(pem)
