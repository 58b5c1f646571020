"""The cluster CA and the certificates it signs, built in memory with `cryptography`.

Every key is ECDSA P-256: a handshake signs and verifies in tens of microseconds, against a
millisecond for RSA-2048, and every TLS stack and cert-manager speaks it. A certificate's subject
names its identity (`ramster.trust.identity`); a node's certificate serves and calls (server and
client auth), a client's or admin's only calls (client auth).

A node's certificate always names ``localhost``, ``127.0.0.1`` and ``::1`` besides its hosts:
tools on the node's own machine reach it there (``ramster stats``), and gRPC checks a server
reached over a unix socket against ``localhost``. A loopback name proves nothing more than
reaching the machine itself, and only nodes get it.

Not here: the files these are written to and read from (`ramster.trust.files`), tokens
(`ramster.trust.tokens`).
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ramster.errors import InvalidArgument
from ramster.trust.identity import NAME_URI, Identity, Role, common_name

CA_DAYS = 3650
"""Default lifetime of a cluster CA, in days."""
DAYS = 365
"""Default lifetime of a certificate (and a token), in days."""
MAX_DAYS = 36500
BACKDATE = datetime.timedelta(minutes=5)
"""Certificates start this long before they are made, so a peer whose clock is a little behind
still accepts a fresh one."""
NODE_HOSTS = ("localhost", "127.0.0.1", "::1")
"""Names every node certificate carries (see the module docstring)."""

_DNS_NAME = re.compile(
    r"^(?=.{1,253}$)(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*$"
)
HOST_RULE = "a DNS name (labels of letters, digits, '-' or '_') or an IP address"


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A certificate and its private key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def __repr__(self) -> str:
        subject = self.certificate.subject.rfc4514_string()
        until = self.certificate.not_valid_after_utc.date().isoformat()
        return f"<KeyPair {subject!r} until={until}>"


def check_days(days: int, field: str = "days") -> int:
    """`days` if it is a lifetime in days (1..36500), else `InvalidArgument`."""
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_DAYS:
        raise InvalidArgument.field(field, days, f"an int in 1..{MAX_DAYS}")
    return days


def host_name(text: str) -> x509.GeneralName:
    """The subject alternative name for host `text`: an IP address or a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        pass
    if not _DNS_NAME.match(text):
        raise InvalidArgument.field("host", text, HOST_RULE)
    return x509.DNSName(text.lower())


def make_ca(now: datetime.datetime, days: int = CA_DAYS) -> KeyPair:
    """A new self-signed cluster CA valid for `days` from `now`; it signs certificates only
    (path length 0). Its CN carries a random tag, so two clusters' CAs are told apart in errors."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ramster"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"ramster CA {secrets.token_hex(4)}"),
        ]
    )
    public = key.public_key()
    builder = (
        _validity(x509.CertificateBuilder(), now, check_days(days))
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    return KeyPair(builder.sign(key, hashes.SHA256()), key)


def make_certificate(
    ca: KeyPair,
    identity: Identity,
    hosts: Sequence[str] = (),
    *,
    now: datetime.datetime,
    days: int = DAYS,
) -> KeyPair:
    """A new key and a certificate for `identity` signed by `ca`, valid for `days` from `now`
    and naming `hosts` (a node's also names `NODE_HOSTS`)."""
    if identity.role is Role.LOCAL:
        raise InvalidArgument.field("role", identity.role.value, "node, client or admin")
    ends = now + datetime.timedelta(days=check_days(days))
    if ends > ca.certificate.not_valid_after_utc:
        raise InvalidArgument(
            f"days {days} is invalid: the certificate would outlive its CA, which expires "
            f"{ca.certificate.not_valid_after_utc.isoformat()}"
        )
    key = ec.generate_private_key(ec.SECP256R1())
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if identity.role is Role.NODE:
        usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
        hosts = [*NODE_HOSTS, *hosts]
    names: list[x509.GeneralName] = list(dict.fromkeys(host_name(host) for host in hosts))
    cn = common_name(identity.name)
    if cn != identity.name:  # too long for the CN: whole in a URI (`ramster.trust.identity`)
        names.append(x509.UniformResourceIdentifier(f"{NAME_URI}{identity.name}"))
    ca_public = ca.key.public_key()
    builder = (
        _validity(x509.CertificateBuilder(), now, days)
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, identity.role.value),
                    x509.NameAttribute(NameOID.COMMON_NAME, cn),
                ]
            )
        )
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_public), critical=False
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return KeyPair(builder.sign(ca.key, hashes.SHA256()), key)


def certificate_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """`key` as unencrypted PKCS#8 PEM (what gRPC and openssl read); its file is mode 0600."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_key_pair(certificate: bytes, key: bytes, what: str) -> KeyPair:
    """The PEM `certificate` and PEM `key` of `what` (a path, for messages), checked to belong
    together; `InvalidArgument` naming `what` otherwise."""
    try:
        loaded_certificate = x509.load_pem_x509_certificate(certificate)
    except ValueError:
        raise InvalidArgument(f"{what}: not a PEM certificate") from None
    try:
        loaded_key = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError):
        raise InvalidArgument(f"{what}: not an unencrypted PEM private key") from None
    if not isinstance(loaded_key, ec.EllipticCurvePrivateKey):
        raise InvalidArgument(f"{what}: expected an ECDSA key, got {type(loaded_key).__name__}")
    if loaded_key.public_key() != loaded_certificate.public_key():
        raise InvalidArgument(f"{what}: the key does not belong to the certificate")
    return KeyPair(loaded_certificate, loaded_key)


def _validity(
    builder: x509.CertificateBuilder, now: datetime.datetime, days: int
) -> x509.CertificateBuilder:
    return builder.not_valid_before(now - BACKDATE).not_valid_after(
        now + datetime.timedelta(days=days)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )
