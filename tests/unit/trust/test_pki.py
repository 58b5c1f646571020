"""The cluster CA and the certificates it signs: names, usages, lifetimes, chain."""

from __future__ import annotations

import datetime
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ramster.errors import InvalidArgument
from ramster.trust.identity import LOCAL, Identity, Role
from ramster.trust.pki import (
    certificate_pem,
    host_name,
    key_pem,
    load_key_pair,
    make_ca,
    make_certificate,
)

NOW = datetime.datetime(2026, 12, 7, 4, 0, tzinfo=datetime.UTC)
CA = make_ca(NOW)


def names(certificate: x509.Certificate) -> list[str]:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [str(name.value) for name in san.value]


def usages(certificate: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_the_ca_signs_certificates_only_and_lives_ten_years() -> None:
    certificate = CA.certificate
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert (constraints.ca, constraints.path_length) == (True, 0)
    assert certificate.not_valid_before_utc == NOW - datetime.timedelta(minutes=5)
    assert certificate.not_valid_after_utc == NOW + datetime.timedelta(days=3650)
    assert certificate.subject == certificate.issuer
    [common_name] = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert str(common_name.value).startswith("ramster CA ")
    assert isinstance(CA.key, ec.EllipticCurvePrivateKey)
    assert CA.key.curve.name == "secp256r1"
    assert make_ca(NOW).certificate.subject != certificate.subject  # two clusters differ


def test_a_node_certificate_names_loopback_and_its_hosts_and_serves_and_calls() -> None:
    issued = make_certificate(
        CA, Identity(Role.NODE, "n1"), ["10.0.0.7", "Node1.Example", "127.0.0.1"], now=NOW
    )
    certificate = issued.certificate
    certificate.verify_directly_issued_by(CA.certificate)
    assert certificate.subject.rfc4514_string() == "CN=n1,OU=node"
    assert names(certificate) == [
        "localhost",
        "127.0.0.1",
        "::1",
        "10.0.0.7",
        "node1.example",
    ]
    assert usages(certificate) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    assert certificate.not_valid_after_utc == NOW + datetime.timedelta(days=365)
    assert repr(issued) == "<KeyPair 'CN=n1,OU=node' until=2027-12-07>"


@pytest.mark.parametrize("role", [Role.CLIENT, Role.ADMIN])
def test_a_client_or_admin_certificate_only_calls(role: Role) -> None:
    certificate = make_certificate(CA, Identity(role, "ops"), now=NOW, days=30).certificate
    certificate.verify_directly_issued_by(CA.certificate)
    assert names(certificate) == []
    assert usages(certificate) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert certificate.not_valid_after_utc == NOW + datetime.timedelta(days=30)
    with_host = make_certificate(CA, Identity(role, "ops"), ["app.local"], now=NOW)
    assert names(with_host.certificate) == ["app.local"]


def test_a_certificate_may_not_outlive_its_ca() -> None:
    with pytest.raises(InvalidArgument) as refused:
        make_certificate(CA, Identity(Role.CLIENT, "c"), now=NOW, days=3651)
    assert refused.value.message == (
        "days 3651 is invalid: the certificate would outlive its CA, which expires "
        "2036-12-04T04:00:00+00:00"
    )


@pytest.mark.parametrize("days", [0, 36501, True])
def test_days_are_bounded(days: int) -> None:
    with pytest.raises(InvalidArgument) as refused:
        make_certificate(CA, Identity(Role.CLIENT, "c"), now=NOW, days=days)
    assert refused.value.message == f"days {days!r} is invalid: expected an int in 1..36500"


def test_the_local_identity_is_never_issued() -> None:
    with pytest.raises(InvalidArgument) as refused:
        make_certificate(CA, LOCAL, now=NOW)
    assert refused.value.message == "role 'local' is invalid: expected node, client or admin"


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("10.1.2.3", x509.IPAddress(ipaddress.ip_address("10.1.2.3"))),
        ("fd00::1", x509.IPAddress(ipaddress.ip_address("fd00::1"))),
        ("ramster-0.ramster.svc", x509.DNSName("ramster-0.ramster.svc")),
        ("*.ramster.svc", x509.DNSName("*.ramster.svc")),
    ],
)
def test_a_host_is_an_ip_address_or_a_dns_name(text: str, name: x509.GeneralName) -> None:
    assert host_name(text) == name


@pytest.mark.parametrize("text", ["", "a b", "-a", "a..b", "a.", "x" * 64, "unix:///s"])
def test_a_host_that_is_neither_is_refused(text: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        host_name(text)
    assert refused.value.message == (
        f"host {text!r} is invalid: expected a DNS name (labels of letters, digits, '-' or '_') "
        "or an IP address"
    )


def test_a_key_pair_loads_back_and_must_match() -> None:
    other = make_certificate(CA, Identity(Role.CLIENT, "c"), now=NOW)
    certificate, key = certificate_pem(CA.certificate), key_pem(CA.key)
    loaded = load_key_pair(certificate, key, "ca.key")
    assert loaded.certificate == CA.certificate
    assert loaded.key.private_numbers() == CA.key.private_numbers()
    with pytest.raises(InvalidArgument) as refused:
        load_key_pair(certificate, key_pem(other.key), "dir/ca.key")
    assert refused.value.message == "dir/ca.key: the key does not belong to the certificate"
    with pytest.raises(InvalidArgument) as refused:
        load_key_pair(key, key, "dir/ca.key")
    assert refused.value.message == "dir/ca.key: not a PEM certificate"
    with pytest.raises(InvalidArgument) as refused:
        load_key_pair(certificate, certificate, "dir/ca.key")
    assert refused.value.message == "dir/ca.key: not an unencrypted PEM private key"
