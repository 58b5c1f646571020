"""`caller_identity` and `Callers`: a certificate or a token names the caller; a connection
without either is LOCAL."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence

import pytest

from ramster.errors import Unauthenticated
from ramster.rpc.caller import Callers, caller_identity
from ramster.trust.identity import LOCAL, Identity, Role
from ramster.trust.pki import KeyPair, certificate_pem, make_ca, make_certificate
from ramster.trust.tokens import sign_token

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


class MetadataContext(Context):
    """A call's context with its invocation metadata too."""

    def __init__(
        self, auth: Mapping[str, Iterable[bytes]], metadata: Sequence[tuple[str, str]]
    ) -> None:
        super().__init__(auth)
        self.metadata = metadata

    def invocation_metadata(self) -> Sequence[tuple[str, str]]:
        return self.metadata


INSECURE = {"transport_security_type": [b"insecure"]}
CALLERS = Callers(CA.key.public_key(), clock=lambda: NOW)


def bearer(identity: Identity, ca: KeyPair = CA, days: int = 1) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {sign_token(ca.key, identity, now=NOW, days=days)}")]


def test_a_token_names_the_caller_over_a_connection_without_tls() -> None:
    admin = Identity(Role.ADMIN, "ops")
    assert CALLERS.identity(MetadataContext(INSECURE, bearer(admin))) == admin
    assert CALLERS.identity(MetadataContext(INSECURE, [("x-other", "1")])) is LOCAL


def test_a_token_beside_a_certificate_of_the_same_identity_is_taken() -> None:
    app = Identity(Role.CLIENT, "app")
    pem = certificate_pem(make_certificate(CA, app, now=NOW).certificate)
    context = MetadataContext(tls_context(pem).auth, bearer(app))
    assert CALLERS.identity(context) == app


def test_a_certificate_and_a_token_that_disagree_are_refused() -> None:
    pem = certificate_pem(make_certificate(CA, Identity(Role.CLIENT, "app"), now=NOW).certificate)
    context = MetadataContext(tls_context(pem).auth, bearer(Identity(Role.ADMIN, "ops")))
    with pytest.raises(Unauthenticated) as refused:
        CALLERS.identity(context)
    assert refused.value.message == (
        "the caller's certificate names <Identity client 'app'> but its token names "
        "<Identity admin 'ops'>: send one, or both of the same identity"
    )


def test_a_token_of_another_ca_or_expired_or_malformed_is_refused() -> None:
    admin = Identity(Role.ADMIN, "ops")
    cases = {
        "another CA": bearer(admin, make_ca(NOW)),
        "expired": [
            (
                "authorization",
                "Bearer " + sign_token(CA.key, admin, now=NOW - datetime.timedelta(days=2), days=1),
            )
        ],
        "no scheme": [("authorization", "rt1.abc.def")],
        "two": bearer(admin) * 2,
    }
    refusals = {}
    for case, metadata in cases.items():
        with pytest.raises(Unauthenticated) as refused:
            CALLERS.identity(MetadataContext(INSECURE, metadata))
        refusals[case] = refused.value.message.split(" (")[0]
    assert refusals == {
        "another CA": f"token {cases['another CA'][0][1][7:19]!r}... refused: bad signature",
        "expired": f"token {cases['expired'][0][1][7:19]!r}... refused: expired",
        "no scheme": "call metadata 'authorization' is invalid: expected one 'Bearer <token>'",
        "two": "call metadata 'authorization' is invalid: expected one 'Bearer <token>'",
    }


def test_a_node_without_a_ca_refuses_a_token() -> None:
    with pytest.raises(Unauthenticated) as refused:
        Callers(None).identity(MetadataContext(INSECURE, bearer(Identity(Role.ADMIN, "ops"))))
    assert refused.value.message == (
        "the call carries a token, but this node has no cluster CA to check it with (it runs "
        "without --tls-ca): call it without a token"
    )


def test_a_token_checked_once_is_still_refused_once_it_expired() -> None:
    clock = [NOW]
    callers = Callers(CA.key.public_key(), clock=lambda: clock[0])
    admin = Identity(Role.ADMIN, "ops")
    context = MetadataContext(INSECURE, bearer(admin, days=1))
    assert callers.identity(context) == admin
    clock[0] = NOW + datetime.timedelta(hours=23)
    assert callers.identity(context) == admin
    clock[0] = NOW + datetime.timedelta(days=1)
    with pytest.raises(Unauthenticated) as refused:
        callers.identity(context)
    assert "refused: expired" in refused.value.message
