"""`ClientConfig`: how a client reaches its node, frozen and validated once.

`Client`, `SyncClient` and the frontends build one from their arguments and pass it down.
"""

from __future__ import annotations

import math
import os
import socket
import uuid
from dataclasses import dataclass, field

from ramster.errors import InvalidArgument
from ramster.wire.bearer import TOKEN_PREFIX, load_token
from ramster.wire.limits import MAX_BATCH, check_client_name, split_host_port
from ramster.wire.tls import TLS


def default_client_name() -> str:
    """``host-pid-xxxxxxxx``: unique per client, so no two clients share pool ids by accident."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """One client of one node.

    target: the node, ``HOST:PORT`` (IPv6 as ``[::1]:PORT``) or ``unix:///path``.
    client_name: whose pools these are (pool ids are per client name on the node); default
        ``host-pid-random``, unique per client.
    timeout: seconds every call may take, connecting included (default 5.0).
    max_batch: at most this many concurrent single-page calls travel in one RPC (default 64).
    tls: the cluster CA and this client's certificate and key, for a node that serves TLS
        (default None: plaintext, as a node without TLS serves on loopback and unix sockets).
    token: a bearer token (``rt1...``, `ramster.wire.bearer.load_token` reads one) every call
        carries: the node takes the identity it names (default None: the certificate's, or over
        a unix socket the local identity).
    """

    target: str
    client_name: str = field(default_factory=default_client_name)
    timeout: float = 5.0
    max_batch: int = 64
    tls: TLS | None = None
    token: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.target, str):
            raise InvalidArgument.field("target", self.target, "HOST:PORT or unix:///path")
        if not self.target.startswith("unix://"):
            split_host_port(self.target, "target")
        check_client_name(self.client_name, "client_name")
        if not isinstance(self.timeout, int | float) or not 0 < self.timeout < math.inf:
            raise InvalidArgument.field("timeout", self.timeout, "seconds > 0")
        if not isinstance(self.max_batch, int) or not 1 <= self.max_batch <= MAX_BATCH:
            raise InvalidArgument.field("max_batch", self.max_batch, f"an int in 1..{MAX_BATCH}")
        if self.tls is not None and not isinstance(self.tls, TLS):
            raise InvalidArgument.field("tls", self.tls, "a ramster.client.TLS or None")
        if self.token is not None:
            if not isinstance(self.token, str) or not self.token.startswith(TOKEN_PREFIX):
                # Never the value: it may be a credential.
                raise InvalidArgument(
                    f"token of type {type(self.token).__name__} is invalid: expected a token "
                    f"({TOKEN_PREFIX}...) or None"
                )
            load_token(self.token)  # its characters: a metadata value takes printable ASCII

    def __repr__(self) -> str:  # never the token: it is a credential
        return (
            f"ClientConfig(target={self.target!r}, client_name={self.client_name!r}, "
            f"timeout={self.timeout!r}, max_batch={self.max_batch!r}, tls={self.tls!r}, "
            f"token={'<set>' if self.token is not None else None})"
        )
