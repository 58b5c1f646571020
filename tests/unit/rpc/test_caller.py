"""`caller_identity`: a certificate names the caller; a connection without TLS is LOCAL."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping

import pytest

from ramster.errors import Unauthenticated
from ramster.rpc.caller import caller_identity
from ramster.trust.identity import LOCAL, Identity, Role
from ramster.trust.pki import certificate_pem, make_ca, make_certificate

NOW = datetime.datetime.now(datetime.UTC)
CA = make_ca(NOW)


class Context:
    """A call's context as gRPC fills `auth_context` (the keys grpcio 1.85 sets)."""

    def __init__(self, auth: Mapping[str, Iterable[bytes]]) -> None:
        self.auth = auth

    def auth_context(self) -> Mapping[str, Iterable[bytes]]:
        return self.auth


def tls_context(pem: bytes) -> Context:
    return Context(
        {
            "transport_security_type": [b"ssl"],
            "x509_common_name": [b"ignored"],
            "x509_pem_cert": [pem],
            "security_level": [b"TSI_PRIVACY_AND_INTEGRITY"],
        }
    )


@pytest.mark.parametrize("role", [Role.NODE, Role.CLIENT, Role.ADMIN])
def test_a_tls_caller_is_who_its_certificate_names(role: Role) -> None:
    pem = certificate_pem(make_certificate(CA, Identity(role, "c1"), now=NOW).certificate)
    assert caller_identity(tls_context(pem)) == Identity(role, "c1")


def test_a_caller_without_tls_is_local() -> None:
    insecure = {"transport_security_type": [b"insecure"], "security_level": [b"TSI_SECURITY_NONE"]}
    assert caller_identity(Context(insecure)) is LOCAL
    assert caller_identity(Context({})) is LOCAL


def test_a_tls_caller_without_a_certificate_is_refused() -> None:
    with pytest.raises(Unauthenticated) as refused:
        caller_identity(Context({"transport_security_type": [b"ssl"]}))
    assert refused.value.message == "the caller's TLS connection carries no client certificate"


def test_a_certificate_without_a_role_is_refused() -> None:
    pem = certificate_pem(CA.certificate)  # the CA's own: O and CN, no OU
    with pytest.raises(Unauthenticated) as refused:
        caller_identity(tls_context(pem))
    assert "has no valid role: expected one subject OU of node, client or admin, got []" in (
        refused.value.message
    )
