"""The TLS settings both ends of a call load: the cluster CA, and this end's certificate and key.

`TLS` names three PEM files, as etcd's ``--trusted-ca-file``/``--cert-file``/``--key-file`` do,
and checks at construction that each is a readable file. A node serves with
`TLS.server_credentials` (a caller must present a certificate of the same CA); a client, a tool
or a peer calls with `TLS.channel_credentials`, presenting its own certificate and accepting only
a server whose certificate the CA signed for the host it dialled. The files are read, and
checked to hold what they should, each time credentials are built: a renewed certificate is taken
at the next start, and a wrong file is refused in words rather than as gRPC's "failed to bind".

Not here: making the files (`ramster.trust`, ``ramster certs``), who a caller is
(`ramster.rpc`), the flags (`ramster.cli`).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

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
        ca, cert, key = self.material()
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=True
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """Credentials of a channel that presents this certificate and trusts only the CA."""
        ca, cert, key = self.material()
        return grpc.ssl_channel_credentials(
            root_certificates=ca, private_key=key, certificate_chain=cert
        )

    def server_context(self) -> ssl.SSLContext:
        """The same as `server_credentials` for a server on Python's `ssl` (the NBD server's
        STARTTLS): TLS 1.2 or later, a client certificate of the CA required."""
        ca, _, _ = self.material()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=ca.decode())
        context.load_cert_chain(self.cert, self.key)
        return context

    def material(self) -> tuple[bytes, bytes, bytes]:
        """The PEM bytes of (ca, cert, key), checked: gRPC itself says only "failed to bind" or
        fails each handshake when a file holds something else or the key is not the cert's."""
        ca, cert, key = (_read(field, getattr(self, field)) for field in ENVIRONMENT)
        try:
            x509.load_pem_x509_certificates(ca)
        except ValueError:
            raise InvalidArgument(
                f"tls ca {str(self.ca)!r} is invalid: no PEM certificate"
            ) from None
        try:
            public = x509.load_pem_x509_certificate(cert).public_key()
        except ValueError:
            raise InvalidArgument(
                f"tls cert {str(self.cert)!r} is invalid: no PEM certificate"
            ) from None
        try:
            private = serialization.load_pem_private_key(key, password=None)
        except (ValueError, TypeError):
            raise InvalidArgument(
                f"tls key {str(self.key)!r} is invalid: no unencrypted PEM private key"
            ) from None
        if private.public_key() != public:
            raise InvalidArgument(
                f"tls key {str(self.key)!r} is invalid: not the key of the cert {str(self.cert)!r}"
            )
        return ca, cert, key

    def __repr__(self) -> str:
        return f"<TLS ca={str(self.ca)!r} cert={str(self.cert)!r} key={str(self.key)!r}>"


def _read(field: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise InvalidArgument(f"tls {field} {str(path)!r} is invalid: {error.strerror}") from None


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
