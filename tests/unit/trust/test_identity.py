"""Identities, and how a certificate names one (subject OU = role, CN = name)."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ramster.errors import InvalidArgument, Unauthenticated, shown
from ramster.trust.identity import (
    LOCAL,
    Identity,
    Role,
    common_name,
    identity_of_certificate,
    issued_role,
    owner_identity,
)
from ramster.trust.pki import certificate_pem, make_ca, make_certificate

NOW = datetime.datetime(2026, 12, 7, 4, 0, tzinfo=datetime.UTC)


def certificate_with_subject(
    *attributes: tuple[x509.ObjectIdentifier, str], uris: tuple[str, ...] = ()
) -> bytes:
    """A self-signed PEM certificate whose subject is `attributes` (and subject alternative
    names `uris`), as another issuer makes it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=1))
    )
    if uris:
        names = [x509.UniformResourceIdentifier(uri) for uri in uris]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return certificate_pem(builder.sign(key, hashes.SHA256()))


def test_an_identity_is_a_role_and_a_name() -> None:
    identity = Identity(Role.NODE, "n1")
    assert repr(identity) == "<Identity node 'n1'>"
    assert identity == Identity(Role("node"), "n1")
    assert identity != Identity(Role.ADMIN, "n1")
    assert repr(LOCAL) == "<Identity local 'local'>"


def test_an_identity_name_follows_the_name_rule() -> None:
    with pytest.raises(InvalidArgument) as refused:
        Identity(Role.CLIENT, "a b")
    assert refused.value.message == (
        "name 'a b' is invalid: expected 1-63 letters, digits, '.', '_' or '-', starting alnum"
    )


def test_an_identity_reads_as_role_colon_name() -> None:
    assert str(Identity(Role.CLIENT, "app")) == "client:app"
    assert str(LOCAL) == "local:local"


@pytest.mark.parametrize("text", ["client:app", "admin:alice", "local:local", "client:a.b_c-9"])
def test_an_identity_that_owns_pools_is_named_role_colon_name(text: str) -> None:
    assert str(owner_identity(text)) == text


@pytest.mark.parametrize(
    "text", ["node:n1", "client", "client:", ":app", "client:a b", "client:a:b", "root:x", ""]
)
def test_an_identity_that_owns_no_pools_or_is_malformed_is_refused(text: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        owner_identity(text, "IDENTITY")
    assert refused.value.message == (
        f"IDENTITY {text!r} is invalid: expected role:name with role client, admin or local and "
        "name 1-63 letters, digits, '.', '_' or '-', starting alnum"
    )


@pytest.mark.parametrize("text", ["local", "root", "Node", ""])
def test_only_node_client_and_admin_are_issued(text: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        issued_role(text)
    assert refused.value.message == f"role {text!r} is invalid: expected node, client or admin"
    assert [issued_role(word) for word in ("node", "client", "admin")] == [
        Role.NODE,
        Role.CLIENT,
        Role.ADMIN,
    ]


@pytest.mark.parametrize("role", [Role.NODE, Role.CLIENT, Role.ADMIN])
def test_a_certificate_of_the_ca_names_its_identity(role: Role) -> None:
    ca = make_ca(NOW)
    issued = make_certificate(ca, Identity(role, "app-1"), now=NOW)
    assert identity_of_certificate(certificate_pem(issued.certificate)) == Identity(role, "app-1")


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        (
            [(NameOID.COMMON_NAME, "n1")],
            "certificate 'CN=n1' has no valid role: expected one subject OU of node, client or "
            "admin, got []",
        ),
        (
            [(NameOID.ORGANIZATIONAL_UNIT_NAME, "root"), (NameOID.COMMON_NAME, "n1")],
            "certificate 'CN=n1,OU=root' has no valid role: expected one subject OU of node, "
            "client or admin, got ['root']",
        ),
        (
            [(NameOID.ORGANIZATIONAL_UNIT_NAME, "local"), (NameOID.COMMON_NAME, "n1")],
            "certificate 'CN=n1,OU=local' has no valid role: expected one subject OU of node, "
            "client or admin, got ['local']",
        ),
        (
            [
                (NameOID.ORGANIZATIONAL_UNIT_NAME, "client"),
                (NameOID.ORGANIZATIONAL_UNIT_NAME, "admin"),
                (NameOID.COMMON_NAME, "n1"),
            ],
            "certificate 'CN=n1,OU=admin,OU=client' has no valid role: expected one subject OU "
            "of node, client or admin, got ['client', 'admin']",
        ),
        (
            [(NameOID.ORGANIZATIONAL_UNIT_NAME, "node")],
            "certificate 'OU=node' has no valid name: expected one subject CN, got []",
        ),
        (
            [(NameOID.ORGANIZATIONAL_UNIT_NAME, "node"), (NameOID.COMMON_NAME, "n 1")],
            "certificate 'CN=n 1,OU=node': name 'n 1' is invalid: expected 1-253 letters, "
            "digits, '.', '_' or '-', starting alnum",
        ),
        (
            [(NameOID.ORGANIZATIONAL_UNIT_NAME, "client"), (NameOID.COMMON_NAME, "n 1")],
            "certificate 'CN=n 1,OU=client': name 'n 1' is invalid: expected 1-63 letters, "
            "digits, '.', '_' or '-', starting alnum",
        ),
    ],
    ids=["no-role", "unknown-role", "local-role", "two-roles", "no-name", "bad-name", "bad-client"],
)
def test_a_certificate_without_a_valid_identity_is_refused(
    attributes: list[tuple[x509.ObjectIdentifier, str]], message: str
) -> None:
    with pytest.raises(Unauthenticated) as refused:
        identity_of_certificate(certificate_with_subject(*attributes))
    assert refused.value.message == message


def test_a_malformed_certificate_is_refused() -> None:
    with pytest.raises(Unauthenticated) as refused:
        identity_of_certificate(b"-----BEGIN CERTIFICATE-----\nnot base64\n")
    assert refused.value.message == (
        "certificate of 39 bytes is malformed: expected one PEM certificate"
    )


LONG = ".".join(["worker-" + "a" * 56] * 4)[:253]
"""A Kubernetes node name as long as one may be (253 characters)."""
LONG_CN = "worker-" + "a" * 40 + "~" + "7e6925682fc9a304"  # sha256(LONG), first 16 hex


def test_a_node_name_may_be_as_long_as_a_kubernetes_nodes_and_other_names_63() -> None:
    assert Identity(Role.NODE, LONG).name == LONG
    with pytest.raises(InvalidArgument) as refused:
        Identity(Role.NODE, LONG + "a")
    assert refused.value.message == (
        f"name {LONG[:64]!r}... (254 characters) is invalid: expected 1-253 letters, digits, "
        "'.', '_' or '-', starting alnum"
    )
    with pytest.raises(InvalidArgument) as refused:
        Identity(Role.CLIENT, "a" * 64)
    assert refused.value.message == (
        f"name {'a' * 64!r} is invalid: expected 1-63 letters, digits, '.', '_' or '-', "
        "starting alnum"
    )


def test_a_name_longer_than_a_cn_goes_whole_in_a_uri_and_abbreviated_in_the_cn() -> None:
    issued = make_certificate(make_ca(NOW), Identity(Role.NODE, LONG), now=NOW)
    certificate = issued.certificate
    [cn] = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert cn.value == common_name(LONG) == LONG_CN
    assert len(LONG_CN) == 64
    sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [f"urn:ramster:name:{LONG}"]
    assert identity_of_certificate(certificate_pem(certificate)) == Identity(Role.NODE, LONG)


def test_a_name_that_fits_the_cn_is_carried_there_alone() -> None:
    name = "n" * 64
    issued = make_certificate(make_ca(NOW), Identity(Role.NODE, name), now=NOW)
    [cn] = issued.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    sans = issued.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert (cn.value, sans.value.get_values_for_type(x509.UniformResourceIdentifier)) == (name, [])
    assert identity_of_certificate(certificate_pem(issued.certificate)).name == name


@pytest.mark.parametrize(
    ("cn", "uris"),
    [
        ("n1", (f"urn:ramster:name:{LONG}",)),  # a CN that is not the URI's name abbreviated
        (LONG_CN, (f"urn:ramster:name:{LONG}", f"urn:ramster:name:{LONG[:-1]}z")),
    ],
    ids=["other-cn", "two-uris"],
)
def test_a_uri_name_must_be_one_and_the_one_the_cn_abbreviates(
    cn: str, uris: tuple[str, ...]
) -> None:
    pem = certificate_with_subject(
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "node"), (NameOID.COMMON_NAME, cn), uris=uris
    )
    with pytest.raises(Unauthenticated) as refused:
        identity_of_certificate(pem)
    names = [uri.removeprefix("urn:ramster:name:") for uri in uris]
    assert refused.value.message == (
        f"certificate {shown(f'CN={cn},OU=node')} has no valid name: expected at most one URI "
        f"urn:ramster:name:NAME, of a NAME the CN abbreviates, got {shown(names)}"
    )


def test_a_client_named_longer_than_63_in_a_uri_is_refused() -> None:
    name = "c" * 100
    pem = certificate_with_subject(
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "client"),
        (NameOID.COMMON_NAME, common_name(name)),
        uris=(f"urn:ramster:name:{name}",),
    )
    with pytest.raises(Unauthenticated) as refused:
        identity_of_certificate(pem)
    assert refused.value.message.endswith(
        f"name {'c' * 64!r}... (100 characters) is invalid: expected 1-63 letters, digits, "
        "'.', '_' or '-', starting alnum"
    )
