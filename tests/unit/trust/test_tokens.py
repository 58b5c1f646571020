"""Bearer tokens: signed with the CA's key, checked with its certificate's public key only."""

from __future__ import annotations

import base64
import datetime
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from ramster.errors import InvalidArgument, Unauthenticated
from ramster.trust.identity import LOCAL, Identity, Role
from ramster.trust.tokens import REASONS, TokenRefused, sign_token, verify_token

NOW = datetime.datetime(2026, 12, 7, 4, 0, tzinfo=datetime.UTC)
CA_KEY = ec.generate_private_key(ec.SECP256R1())
CA_PUBLIC = CA_KEY.public_key()
APP = Identity(Role.CLIENT, "app")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signed_by_hand(claims: object, key: ec.EllipticCurvePrivateKey = CA_KEY) -> str:
    """A token made from the documented format, not by `sign_token`."""
    signed = f"rt1.{b64(json.dumps(claims).encode())}"
    r, s = decode_dss_signature(key.sign(signed.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signed}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def refusal(token: str, now: datetime.datetime = NOW) -> TokenRefused:
    with pytest.raises(TokenRefused) as refused:
        verify_token(token, CA_PUBLIC, now)
    assert isinstance(refused.value, Unauthenticated)
    return refused.value


def test_a_token_proves_its_identity_until_it_expires() -> None:
    token = sign_token(CA_KEY, APP, now=NOW, days=2)
    prefix, payload, signature = token.split(".")
    assert prefix == "rt1"
    assert json.loads(unb64(payload)) == {
        "role": "client",
        "name": "app",
        "iat": 1796616000,
        "exp": 1796616000 + 2 * 86400,
    }
    assert len(unb64(signature)) == 64
    assert verify_token(token, CA_PUBLIC, NOW) == APP
    just_before = NOW + datetime.timedelta(days=2, seconds=-1)
    assert verify_token(token, CA_PUBLIC, just_before) == APP
    expired = refusal(token, NOW + datetime.timedelta(days=2))
    assert expired.reason == "expired"
    assert expired.message == (
        f"token {token[:12]!r}... refused: expired (expired 2026-12-09T04:00:00+00:00)"
    )


def test_the_documented_format_verifies() -> None:
    token = signed_by_hand({"role": "admin", "name": "ops", "iat": 1, "exp": 2**40})
    assert verify_token(token, CA_PUBLIC, NOW) == Identity(Role.ADMIN, "ops")


def test_another_cas_token_has_a_bad_signature() -> None:
    token = sign_token(ec.generate_private_key(ec.SECP256R1()), APP, now=NOW, days=1)
    refused = refusal(token)
    assert refused.reason == "bad signature"
    assert refused.message == (
        f"token {token[:12]!r}... refused: bad signature (not signed by this cluster's CA)"
    )


def test_a_changed_payload_has_a_bad_signature() -> None:
    token = sign_token(CA_KEY, APP, now=NOW, days=1)
    _, _, signature = token.split(".")
    claims = {"exp": 1796616000 + 86400, "iat": 1796616000, "name": "admin", "role": "admin"}
    forged = f"rt1.{b64(json.dumps(claims, separators=(',', ':')).encode())}.{signature}"
    assert refusal(forged).reason == "bad signature"


@pytest.mark.parametrize("role", ["root", "local", "Node"])
def test_a_signed_token_of_an_unknown_role_is_refused(role: str) -> None:
    token = signed_by_hand({"role": role, "name": "x", "iat": 1, "exp": 2**40})
    refused = refusal(token)
    assert refused.reason == "unknown role"
    assert refused.message == (
        f"token {token[:12]!r}... refused: unknown role (expected node, client or admin)"
    )


@pytest.mark.parametrize(
    ("token", "detail"),
    [
        ("", "expected rt1.<payload>.<signature>"),
        ("rt1.abc", "expected rt1.<payload>.<signature>"),
        ("rt2.e30.AAAA", "expected rt1.<payload>.<signature>"),
        ("rt1.e30.AA.AA", "expected rt1.<payload>.<signature>"),
        ("rt1.e30.A!A", "signature is not base64url"),
        ("rt1.e30.AAAA", "signature of 3 bytes, expected 64"),
        ("rt1.é30.AAAA", "expected at most 2048 ASCII characters"),
        ("rt1." + "A" * 3000 + ".AAAA", "expected at most 2048 ASCII characters"),
    ],
)
def test_a_malformed_token_is_refused(token: str, detail: str) -> None:
    refused = refusal(token)
    assert refused.reason == "malformed"
    shown = repr(token[:12]) + ("..." if len(token) > 12 else "")
    assert refused.message == f"token {shown} refused: malformed ({detail})"


@pytest.mark.parametrize(
    "claims",
    [
        [],
        {"role": "client", "name": "app", "iat": 1},
        {"role": "client", "name": "app", "iat": 1, "exp": "2"},
        {"role": "client", "name": 7, "iat": 1, "exp": 2**40},
        {"role": "client", "name": "app", "iat": True, "exp": 2**40},
    ],
)
def test_a_signed_payload_of_the_wrong_shape_is_refused(claims: object) -> None:
    refused = refusal(signed_by_hand(claims))
    assert (refused.reason, refused.message[-49:]) == (
        "malformed",
        "malformed (payload is not {role, name, iat, exp})",
    )


def test_a_signed_name_follows_the_name_rule() -> None:
    refused = refusal(signed_by_hand({"role": "client", "name": "a b", "iat": 1, "exp": 2**40}))
    assert refused.reason == "malformed"
    assert refused.message.endswith(
        "malformed (name 'a b' is invalid: expected 1-63 letters, digits, '.', '_' or '-', "
        "starting alnum)"
    )


def test_a_refusal_never_shows_the_whole_token() -> None:
    token = sign_token(ec.generate_private_key(ec.SECP256R1()), APP, now=NOW, days=1)
    assert token[12:] not in refusal(token).message
    assert set(REASONS) == {"malformed", "bad signature", "expired", "unknown role"}


def test_the_local_identity_gets_no_token() -> None:
    with pytest.raises(InvalidArgument) as refused:
        sign_token(CA_KEY, LOCAL, now=NOW, days=1)
    assert refused.value.message == "role 'local' is invalid: expected node, client or admin"
