"""What ``ramster certs`` writes: the files, their modes, and no overwrite unless forced."""

from __future__ import annotations

import datetime
import stat
from pathlib import Path

import pytest
from cryptography import x509

from ramster.errors import InvalidArgument
from ramster.trust.files import init_ca, issue, load_ca, read_page_key
from ramster.trust.identity import Identity, Role, identity_of_certificate
from ramster.trust.tokens import verify_token

NOW = datetime.datetime(2026, 12, 7, 4, 0, tzinfo=datetime.UTC)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_writes_the_ca_with_a_private_key(tmp_path: Path) -> None:
    folder = tmp_path / "certs"
    written = init_ca(folder, now=NOW)
    assert written == [folder / "ca.crt", folder / "ca.key"]
    assert (mode(folder), mode(folder / "ca.crt"), mode(folder / "ca.key")) == (0o700, 0o644, 0o600)
    assert sorted(p.name for p in folder.iterdir()) == ["ca.crt", "ca.key"]  # no temporary left
    ca = load_ca(folder)
    assert ca.certificate == x509.load_pem_x509_certificate((folder / "ca.crt").read_bytes())


def test_a_node_gets_a_certificate_a_key_and_a_page_key(tmp_path: Path) -> None:
    init_ca(tmp_path, now=NOW)
    written = issue(tmp_path, Identity(Role.NODE, "n1"), ["10.0.0.1"], now=NOW)
    assert written == [tmp_path / "n1.crt", tmp_path / "n1.key", tmp_path / "n1.pagekey"]
    assert [mode(path) for path in written] == [0o644, 0o600, 0o600]
    certificate = (tmp_path / "n1.crt").read_bytes()
    assert identity_of_certificate(certificate) == Identity(Role.NODE, "n1")
    x509.load_pem_x509_certificate(certificate).verify_directly_issued_by(
        load_ca(tmp_path).certificate
    )
    assert len(read_page_key(tmp_path / "n1.pagekey")) == 32
    issue(tmp_path, Identity(Role.NODE, "n2"), now=NOW)
    assert read_page_key(tmp_path / "n1.pagekey") != read_page_key(tmp_path / "n2.pagekey")


def test_a_node_named_up_to_245_characters_gets_files_named_after_it(tmp_path: Path) -> None:
    """``NAME.pagekey`` is a key of a Kubernetes Secret (253 characters at most)."""
    init_ca(tmp_path, now=NOW)
    name = "n" * 245
    written = issue(tmp_path, Identity(Role.NODE, name), now=NOW)
    assert [path.name for path in written] == [f"{name}.crt", f"{name}.key", f"{name}.pagekey"]
    assert identity_of_certificate(written[0].read_bytes()) == Identity(Role.NODE, name)
    longer = "n" * 246
    with pytest.raises(InvalidArgument) as refused:
        issue(tmp_path, Identity(Role.NODE, longer), now=NOW)
    assert refused.value.message == (
        f"name {longer[:64]!r}... (246 characters) is invalid: expected at most 245 characters "
        "for files NAME.crt, NAME.key and NAME.pagekey (a Kubernetes Secret's keys hold 253 "
        "characters)"
    )
    assert len(list(tmp_path.iterdir())) == 5  # ca.crt, ca.key and the first node's three


@pytest.mark.parametrize("role", [Role.CLIENT, Role.ADMIN])
def test_a_client_or_admin_gets_no_page_key_and_a_token_if_asked(
    tmp_path: Path, role: Role
) -> None:
    init_ca(tmp_path, now=NOW)
    assert issue(tmp_path, Identity(role, "a"), now=NOW) == [tmp_path / "a.crt", tmp_path / "a.key"]
    written = issue(tmp_path, Identity(role, "b"), now=NOW, days=3, token=True)
    assert written == [tmp_path / "b.crt", tmp_path / "b.key", tmp_path / "b.token"]
    assert mode(tmp_path / "b.token") == 0o600
    token = (tmp_path / "b.token").read_text()
    assert token.endswith("\n")
    public = load_ca(tmp_path).certificate.public_key()
    assert verify_token(token.strip(), public, NOW) == Identity(role, "b")  # type: ignore[arg-type]


def test_nothing_is_overwritten_unless_forced(tmp_path: Path) -> None:
    init_ca(tmp_path, now=NOW)
    issue(tmp_path, Identity(Role.CLIENT, "app"), now=NOW)
    key = (tmp_path / "app.key").read_bytes()
    with pytest.raises(InvalidArgument) as refused:
        issue(tmp_path, Identity(Role.CLIENT, "app"), now=NOW, token=True)
    assert (
        refused.value.message
        == f"{tmp_path}/app.crt exists: refusing to overwrite it (--force does)"
    )
    assert not (tmp_path / "app.token").exists()  # every file checked before the first is written
    assert (tmp_path / "app.key").read_bytes() == key
    with pytest.raises(InvalidArgument) as refused:
        init_ca(tmp_path, now=NOW)
    assert (
        refused.value.message
        == f"{tmp_path}/ca.crt exists: refusing to overwrite it (--force does)"
    )
    issue(tmp_path, Identity(Role.CLIENT, "app"), now=NOW, force=True)
    assert (tmp_path / "app.key").read_bytes() != key
    assert mode(tmp_path / "app.key") == 0o600


def test_a_forced_overwrite_tightens_a_loose_key_file(tmp_path: Path) -> None:
    init_ca(tmp_path, now=NOW)
    (tmp_path / "ca.key").chmod(0o644)
    init_ca(tmp_path, now=NOW, force=True)
    assert mode(tmp_path / "ca.key") == 0o600


def test_issue_needs_the_ca(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument) as refused:
        issue(tmp_path, Identity(Role.NODE, "n1"), now=NOW)
    assert refused.value.message == (
        f"{tmp_path}/ca.crt: no such file (run `ramster certs init` first)"
    )


def test_a_page_key_file_holds_32_bytes(tmp_path: Path) -> None:
    (tmp_path / "n1.pagekey").write_bytes(bytes(31))
    with pytest.raises(InvalidArgument) as refused:
        read_page_key(tmp_path / "n1.pagekey")
    assert refused.value.message == f"{tmp_path}/n1.pagekey: page key of 31 bytes, expected 32"
    with pytest.raises(InvalidArgument) as refused:
        read_page_key(tmp_path / "n2.pagekey")
    assert refused.value.message == (
        f"{tmp_path}/n2.pagekey: no such file (a node's page key is issued with its certificate "
        "by `ramster certs issue`)"
    )
