"""Who is calling: the `Identity` of the caller of an RPC, from its connection.

Over TLS (every TCP listener of a node with ``--tls-*``) the handshake has already checked the
caller's certificate against the cluster CA, so its subject names the caller
(`ramster.trust.identity`). A connection without TLS, whether a unix socket, loopback TCP of a
node without TLS, or TCP the operator opened with ``--insecure``, proves nothing: gRPC does not
even tell the server the uid of a unix-socket caller (its auth context says only "insecure"),
so every such caller is `LOCAL`. Who may connect there at all is decided by the socket file's
mode and group, by loopback, or, with ``--insecure``, by the network.

Not here: what an identity may do (authorization), bearer tokens in metadata (`ramster.trust.
tokens` checks them; reading them from a call comes with authorization).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Protocol

from ramster.errors import Unauthenticated
from ramster.trust.identity import LOCAL, Identity, identity_of_certificate

CACHED_CERTIFICATES = 1024
"""Callers whose certificate is parsed once, not on every call."""


class CallContext(Protocol):
    """What `caller_identity` reads of a call: grpc.aio's ServicerContext has it."""

    def auth_context(self) -> Mapping[str, Iterable[bytes]]: ...


def caller_identity(context: CallContext) -> Identity:
    """The identity of the caller of the call `context` serves; `Unauthenticated` if its
    certificate names none (a certificate of the CA without a role, say)."""
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
