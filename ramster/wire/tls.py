"""The TLS settings both ends of a call load: the cluster CA, and this end's certificate and key.

`TLS` names three PEM files, as etcd's ``--trusted-ca-file``/``--cert-file``/``--key-file`` do,
and checks at construction that each is a readable file. A node serves with
`TLS.server_credentials` (a caller must present a certificate of the same CA); a client, a tool
or a peer calls with `TLS.channel_credentials`, presenting its own certificate and accepting only
a server whose certificate the CA signed for the host it dialled. The files are read each time
credentials are built, so a renewed certificate is taken at the next start.

Not here: making the files (`ramster.trust`, ``ramster certs``), who a caller is
(`ramster.rpc`), the flags (`ramster.cli`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc

from ramster.errors import InvalidArgument

ENVIRONMENT = {"ca": "RAMSTER_TLS_CA", "cert": "RAMSTER_TLS_CERT", "key": "RAMSTER_TLS_KEY"}
"""The variable of each field."""


@dataclass(frozen=True, slots=True)
class TLS:
    """ca: the cluster CA's certificate (PEM); cert: this end's certificate (PEM), signed by it;
    key: this end's private key (PEM, unencrypted). Paths; each must be a readable file."""

    ca: Path
    cert: Path
    key: Path

    def __init__(
        self, ca: str | os.PathLike[str], cert: str | os.PathLike[str], key: str | os.PathLike[str]
    ) -> None:
        for field, value in (("ca", ca), ("cert", cert), ("key", key)):
            object.__setattr__(self, field, _readable_file(field, value))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TLS | None:
        """The settings of ``RAMSTER_TLS_CA``, ``RAMSTER_TLS_CERT`` and ``RAMSTER_TLS_KEY``: all
        three, or None if none is set; `InvalidArgument` if only some are."""
        environ = os.environ if environ is None else environ
        values = {field: environ.get(variable) for field, variable in ENVIRONMENT.items()}
        given = {field: value for field, value in values.items() if value}
        if not given:
            return None
        if len(given) != len(ENVIRONMENT):
            missing = [ENVIRONMENT[field] for field in ENVIRONMENT if field not in given]
            present = [ENVIRONMENT[field] for field in given]
            raise InvalidArgument(
                f"{', '.join(present)} set without {', '.join(missing)}: TLS needs all three"
            )
        return cls(**given)

    def server_credentials(self) -> grpc.ServerCredentials:
        """Credentials of a listener that requires, and verifies against the CA, a client
        certificate."""
        return grpc.ssl_server_credentials(
            [(self.key.read_bytes(), self.cert.read_bytes())],
            root_certificates=self.ca.read_bytes(),
            require_client_auth=True,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """Credentials of a channel that presents this certificate and trusts only the CA."""
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca.read_bytes(),
            private_key=self.key.read_bytes(),
            certificate_chain=self.cert.read_bytes(),
        )

    def __repr__(self) -> str:
        return f"<TLS ca={str(self.ca)!r} cert={str(self.cert)!r} key={str(self.key)!r}>"


def _readable_file(field: str, value: str | os.PathLike[str]) -> Path:
    if not isinstance(value, str | os.PathLike) or not os.fspath(value):
        raise InvalidArgument.field(f"tls {field}", value, "the path of a PEM file")
    path = Path(value)
    if not path.is_file():
        problem = "not a file" if path.exists() else "no such file"
        raise InvalidArgument(f"tls {field} {str(path)!r} is invalid: {problem}")
    if not os.access(path, os.R_OK):
        raise InvalidArgument(f"tls {field} {str(path)!r} is invalid: not readable by this user")
    return path
