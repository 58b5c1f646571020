"""Identities, and how a certificate names one (subject OU = role, CN = name)."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ramster.errors import InvalidArgument, Unauthenticated
from ramster.trust.identity import (
    LOCAL,
    Identity,
    Role,
    identity_of_certificate,
    issued_role,
    owner_identity,
)
from ramster.trust.pki import certificate_pem, make_ca, make_certificate

NOW = datetime.datetime(2026, 12, 7, 4, 0, tzinfo=datetime.UTC)


def certificate_with_subject(*attributes: tuple[x509.ObjectIdentifier, str]) -> bytes:
    """A self-signed PEM certificate whose subject is `attributes`, as another issuer makes it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate_pem(certificate)


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
            "certificate 'CN=n 1,OU=node': name 'n 1' is invalid: expected 1-63 letters, "
            "digits, '.', '_' or '-', starting alnum",
        ),
    ],
    ids=["no-role", "unknown-role", "local-role", "two-roles", "no-name", "bad-name"],
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
