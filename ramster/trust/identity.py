"""Who a caller is: a `Role` and a name, and how a certificate of the cluster CA names them.

A certificate's subject carries the identity: exactly one OU (organizational unit) holding the
role and exactly one CN (common name) holding the name, e.g. ``CN=n1, OU=node``. Why these two:
CN as the name is what etcd and Kubernetes read from a client certificate, so operators know it;
the role gets an attribute of its own (Kubernetes puts groups in O) so the name stays free, and
OU is one that every issuer can set (openssl ``-subj``, cert-manager's
``subject.organizationalUnits``) and no public CA puts on a certificate of our private CA. A
certificate with no role, several, or an unknown one is refused rather than given a default: a
certificate that does not say what it is for proves nothing.

A node's name may be longer (up to 253 characters, as a Kubernetes node's) than a CN may be (64,
X.509's upper bound, which cert-manager and OpenSSL enforce). Such a name is carried whole in
a subject alternative name, the URI ``urn:ramster:name:NAME``, and the CN holds it `abbreviated`
to 64 characters, which is then the certificate's etcd user. A certificate with that URI must
have the CN it implies: the two never name different identities.

Not here: checking that the certificate was signed by the cluster CA (the TLS handshake did that
before a certificate reaches `identity_of_certificate`), what a role may do (authorization).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from nodemanager.keys import NAME_RULE, abbreviated, check_name, check_node_name
from ramster.errors import InvalidArgument, Unauthenticated, shown


class Role(enum.StrEnum):
    """What an identity is for."""

    NODE = "node"
    """A RAMster node: serves, and calls its peers' Peer service."""
    CLIENT = "client"
    """An application storing pages (frontswap, cleancache, the client library)."""
    ADMIN = "admin"
    """An operator: may change settings and drain nodes."""
    LOCAL = "local"
    """A caller over the node's unix socket with neither certificate nor token: gRPC tells the
    server nothing about who it is (not even its uid), so the socket's mode and group decide who
    may connect at all, and every such caller shares the one identity `LOCAL`. Never issued."""


ISSUED_ROLES = (Role.NODE, Role.CLIENT, Role.ADMIN)
"""The roles a certificate or token may carry."""

OWNER_ROLES = (Role.CLIENT, Role.ADMIN, Role.LOCAL)
"""The roles that own pools: the callers of the Tmem service (a node proves a peer)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """A caller as the server knows it: its role and its name (a node, client or admin name)."""

    role: Role
    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.role, Role):
            raise InvalidArgument.field("role", self.role, "a Role")
        if self.role is Role.NODE:
            check_node_name("name", self.name)
        else:
            check_name("name", self.name)

    def __repr__(self) -> str:
        return f"<Identity {self.role} {self.name!r}>"

    def __str__(self) -> str:
        """``role:name``: how operators name it, and the owner scope of its pools' client names
        (`ramster.tmem.keys.owner_name`)."""
        return f"{self.role.value}:{self.name}"


MAX_COMMON_NAME = 64
"""Characters of a certificate's CN at most (X.509's ub-common-name)."""
NAME_URI = "urn:ramster:name:"
"""What starts the subject alternative name that carries a name longer than a CN."""


def common_name(name: str) -> str:
    """The CN of a certificate of an identity named `name`: the name, abbreviated if longer
    than `MAX_COMMON_NAME` (and then carried whole in a URI named `NAME_URI` + name)."""
    return abbreviated(name, MAX_COMMON_NAME)


LOCAL = Identity(Role.LOCAL, "local")
"""Every unix-socket caller without a certificate or token (see `Role.LOCAL`)."""


def issued_role(text: str, field: str = "role") -> Role:
    """The role named `text` if a certificate or token may carry it, else `InvalidArgument`."""
    if text not in {role.value for role in ISSUED_ROLES}:
        raise InvalidArgument.field(field, text, "node, client or admin")
    return Role(text)


def owner_identity(text: str, field: str = "identity") -> Identity:
    """The identity ``role:name`` in `text`, of a role that owns pools (`OWNER_ROLES`), else
    `InvalidArgument` naming `field`."""
    role, _, name = text.partition(":")
    if role in {role.value for role in OWNER_ROLES}:
        try:
            return Identity(Role(role), name)
        except InvalidArgument:
            pass  # refused below, with the whole text
    raise InvalidArgument.field(
        field, text, f"role:name with role client, admin or local and name {NAME_RULE}"
    )


def identity_of_certificate(pem: bytes) -> Identity:
    """The identity a PEM certificate names (subject OU = role, CN = name), or
    `Unauthenticated` saying what is missing or wrong."""
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise Unauthenticated(
            f"certificate of {len(pem)} bytes is malformed: expected one PEM certificate"
        ) from None
    subject = certificate.subject
    roles = [str(a.value) for a in subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]
    names = [str(a.value) for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    described = shown(subject.rfc4514_string())
    if len(roles) != 1 or roles[0] not in {role.value for role in ISSUED_ROLES}:
        raise Unauthenticated(
            f"certificate {described} has no valid role: expected one subject OU of node, "
            f"client or admin, got {shown(roles)}"
        )
    if len(names) != 1:
        raise Unauthenticated(
            f"certificate {described} has no valid name: expected one subject CN, "
            f"got {shown(names)}"
        )
    whole = _names_in_uris(certificate)
    if whole and (len(whole) != 1 or common_name(whole[0]) != names[0]):
        raise Unauthenticated(
            f"certificate {described} has no valid name: expected at most one URI "
            f"{NAME_URI}NAME, of a NAME the CN abbreviates, got {shown(whole)}"
        )
    try:
        return Identity(Role(roles[0]), whole[0] if whole else names[0])
    except InvalidArgument as error:
        raise Unauthenticated(f"certificate {described}: {error.message}") from None


def _names_in_uris(certificate: x509.Certificate) -> list[str]:
    """The names that `NAME_URI` subject alternative names of `certificate` carry."""
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    uris = extension.value.get_values_for_type(x509.UniformResourceIdentifier)
    return [uri.removeprefix(NAME_URI) for uri in uris if uri.startswith(NAME_URI)]
