"""`TLS`: three readable PEM files, from arguments or from ``RAMSTER_TLS_*``."""

from __future__ import annotations

import datetime
from pathlib import Path

import grpc
import pytest

from ramster.errors import InvalidArgument
from ramster.trust.files import init_ca, issue
from ramster.trust.identity import Identity, Role
from ramster.wire.tls import TLS

NOW = datetime.datetime.now(datetime.UTC)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {field: tmp_path / f"{field}.pem" for field in ("ca", "cert", "key")}
    for path in paths.values():
        path.write_text("pem\n")
    return paths


def test_tls_names_three_readable_files(files: dict[str, Path]) -> None:
    tls = TLS(ca=str(files["ca"]), cert=files["cert"], key=files["key"])
    assert (tls.ca, tls.cert, tls.key) == (files["ca"], files["cert"], files["key"])
    assert repr(tls) == (
        f"<TLS ca={str(files['ca'])!r} cert={str(files['cert'])!r} key={str(files['key'])!r}>"
    )
    assert tls == TLS(files["ca"], files["cert"], files["key"])
    with pytest.raises(AttributeError):
        tls.ca = files["key"]  # type: ignore[misc]


@pytest.mark.parametrize("field", ["ca", "cert", "key"])
def test_a_missing_file_is_named_with_its_field(files: dict[str, Path], field: str) -> None:
    missing = files[field].with_name("missing.pem")
    with pytest.raises(InvalidArgument) as refused:
        TLS(**(files | {field: missing}))
    assert refused.value.message == f"tls {field} '{missing}' is invalid: no such file"


def test_a_folder_is_not_a_file(files: dict[str, Path]) -> None:
    folder = files["ca"].parent
    with pytest.raises(InvalidArgument) as refused:
        TLS(**(files | {"key": folder}))
    assert refused.value.message == f"tls key '{folder}' is invalid: not a file"


def test_an_empty_path_is_refused(files: dict[str, Path]) -> None:
    with pytest.raises(InvalidArgument) as refused:
        TLS(**(files | {"cert": ""}))
    assert refused.value.message == "tls cert '' is invalid: expected the path of a PEM file"


def test_from_env_takes_all_three_or_none(files: dict[str, Path]) -> None:
    environ = {
        "RAMSTER_TLS_CA": str(files["ca"]),
        "RAMSTER_TLS_CERT": str(files["cert"]),
        "RAMSTER_TLS_KEY": str(files["key"]),
    }
    assert TLS.from_env(environ) == TLS(**files)
    assert TLS.from_env({"PATH": "/bin"}) is None
    assert TLS.from_env({"RAMSTER_TLS_CA": ""}) is None
    with pytest.raises(InvalidArgument) as refused:
        TLS.from_env({"RAMSTER_TLS_CERT": environ["RAMSTER_TLS_CERT"]})
    assert refused.value.message == (
        "RAMSTER_TLS_CERT set without RAMSTER_TLS_CA, RAMSTER_TLS_KEY: TLS needs all three"
    )
    with pytest.raises(InvalidArgument) as refused:
        TLS.from_env(environ | {"RAMSTER_TLS_KEY": ""})
    assert refused.value.message == (
        "RAMSTER_TLS_CA, RAMSTER_TLS_CERT set without RAMSTER_TLS_KEY: TLS needs all three"
    )


def test_from_env_checks_the_files(files: dict[str, Path]) -> None:
    environ = {
        "RAMSTER_TLS_CA": str(files["ca"]),
        "RAMSTER_TLS_CERT": str(files["cert"]),
        "RAMSTER_TLS_KEY": "/nonexistent/key.pem",
    }
    with pytest.raises(InvalidArgument) as refused:
        TLS.from_env(environ)
    assert refused.value.message == "tls key '/nonexistent/key.pem' is invalid: no such file"


def cluster(folder: Path) -> dict[str, Path]:
    """A CA and a client certificate of it in `folder`, as `ramster certs` writes them."""
    init_ca(folder, now=NOW)
    issue(folder, Identity(Role.CLIENT, "app"), now=NOW)
    return {"ca": folder / "ca.crt", "cert": folder / "app.crt", "key": folder / "app.key"}


def test_credentials_are_built_from_checked_files(tmp_path: Path) -> None:
    tls = TLS(**cluster(tmp_path))
    assert isinstance(tls.channel_credentials(), grpc.ChannelCredentials)
    assert isinstance(tls.server_credentials(), grpc.ServerCredentials)
    assert tls.material() == tuple(path.read_bytes() for path in (tls.ca, tls.cert, tls.key))


def test_files_that_hold_something_else_are_refused(tmp_path: Path) -> None:
    ours, theirs = cluster(tmp_path / "ours"), cluster(tmp_path / "theirs")
    junk = tmp_path / "junk.pem"
    junk.write_text("pem\n")
    cases = {
        "ca": f"tls ca '{junk}' is invalid: no PEM certificate",
        "cert": f"tls cert '{junk}' is invalid: no PEM certificate",
        "key": f"tls key '{junk}' is invalid: no unencrypted PEM private key",
    }
    for field, message in cases.items():
        with pytest.raises(InvalidArgument) as refused:
            TLS(**(ours | {field: junk})).server_credentials()
        assert refused.value.message == message
    with pytest.raises(InvalidArgument) as refused:
        TLS(**(ours | {"key": theirs["key"]})).channel_credentials()
    assert refused.value.message == (
        f"tls key '{theirs['key']}' is invalid: not the key of the cert '{ours['cert']}'"
    )
