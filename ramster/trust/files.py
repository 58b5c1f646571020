"""What ``ramster certs`` writes into a folder, and reads back.

``init``: ``ca.crt`` and ``ca.key``. ``issue``: ``NAME.crt`` and ``NAME.key``; for a node also
``NAME.pagekey`` (32 random bytes: the key its pages are sealed with, `ramster.trust.seal`,
issued beside its certificate so that the node reads it again after a restart and opens what it
shipped before); with a token, ``NAME.token`` (one line). Private files (keys, page keys,
tokens) are mode 0600, certificates 0644, a folder made here 0700.

Nothing is overwritten unless asked (``force``): every file is checked before the first is written,
and each one is written to a temporary file in the folder, then linked into place (no overwrite) or
renamed over the old one (with ``force``), so a reader never sees half a file and a file never
exists with looser permissions than its final ones.

Not here: what goes into the files (`ramster.trust.pki`, `ramster.trust.tokens`).
"""

from __future__ import annotations

import datetime
import os
import secrets
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ramster.errors import InvalidArgument, RamsterError
from ramster.trust.identity import Identity, Role
from ramster.trust.pki import (
    CA_DAYS,
    DAYS,
    KeyPair,
    certificate_pem,
    key_pem,
    load_key_pair,
    make_ca,
    make_certificate,
)
from ramster.trust.seal import KEY_BYTES
from ramster.trust.tokens import sign_token

MAX_FILE_NAME = 253 - len(".pagekey")
"""Characters of an identity's name that its files are named after: ``NAME.pagekey`` must be a
key of a Kubernetes Secret (253 characters at most) and a file name (255 bytes at most). A node
named longer (Kubernetes allows 253) reads files named otherwise (--tls-cert, --tls-key,
--page-key)."""

PRIVATE = 0o600
PUBLIC = 0o644
CA_CERT = "ca.crt"
CA_KEY = "ca.key"


def init_ca(
    folder: Path, *, now: datetime.datetime, days: int = CA_DAYS, force: bool = False
) -> list[Path]:
    """A new cluster CA in `folder` (made if absent); the paths written."""
    _make_folder(folder)
    ca = make_ca(now, days)
    return _write(
        folder,
        [
            (CA_CERT, certificate_pem(ca.certificate), PUBLIC),
            (CA_KEY, key_pem(ca.key), PRIVATE),
        ],
        force,
    )


def issue(
    folder: Path,
    identity: Identity,
    hosts: Sequence[str] = (),
    *,
    now: datetime.datetime,
    days: int = DAYS,
    token: bool = False,
    force: bool = False,
) -> list[Path]:
    """A certificate and key for `identity` from the CA in `folder` (and a page key for a node,
    a token if asked); the paths written."""
    ca = load_ca(folder)
    issued = make_certificate(ca, identity, hosts, now=now, days=days)
    name = identity.name
    if len(name) > MAX_FILE_NAME:
        raise InvalidArgument.field(
            "name",
            name,
            f"at most {MAX_FILE_NAME} characters for files NAME.crt, NAME.key and NAME.pagekey "
            "(a Kubernetes Secret's keys hold 253 characters)",
        )
    files = [
        (f"{name}.crt", certificate_pem(issued.certificate), PUBLIC),
        (f"{name}.key", key_pem(issued.key), PRIVATE),
    ]
    if identity.role is Role.NODE:
        files.append((f"{name}.pagekey", secrets.token_bytes(KEY_BYTES), PRIVATE))
    if token:
        signed = sign_token(ca.key, identity, now=now, days=days)
        files.append((f"{name}.token", f"{signed}\n".encode(), PRIVATE))
    return _write(folder, files, force)


def load_ca(folder: Path) -> KeyPair:
    """The CA `init_ca` wrote in `folder`."""
    certificate, key = (
        _read(folder / name, "run `ramster certs init` first") for name in (CA_CERT, CA_KEY)
    )
    return load_key_pair(certificate, key, str(folder / CA_KEY))


def read_page_key(path: Path) -> bytes:
    """The page key in file `path` (``NAME.pagekey``), checked to be 32 bytes."""
    key = _read(path, "a node's page key is issued with its certificate by `ramster certs issue`")
    if len(key) != KEY_BYTES:
        raise InvalidArgument(f"{path}: page key of {len(key)} bytes, expected {KEY_BYTES}")
    return key


def _read(path: Path, hint: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InvalidArgument(f"{path}: no such file ({hint})") from None
    except OSError as error:
        raise RamsterError(f"{path}: cannot read: {error.strerror}") from None


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise RamsterError(f"{folder}: cannot make the folder: {error.strerror}") from None
    if not folder.is_dir():
        raise InvalidArgument(f"{folder}: not a folder")


def _write(folder: Path, files: list[tuple[str, bytes, int]], force: bool) -> list[Path]:
    paths = [folder / name for name, _, _ in files]
    if not force:
        for path in paths:
            if path.exists():
                raise InvalidArgument(f"{path} exists: refusing to overwrite it (--force does)")
    for path, (_, content, mode) in zip(paths, files, strict=True):
        _write_file(path, content, mode, force)
    return paths


def _write_file(path: Path, content: bytes, mode: int, force: bool) -> None:
    # A short prefix: the name of a long-named node's file leaves no room for one of its own.
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".new.")
    try:
        with os.fdopen(descriptor, "wb") as file:
            os.fchmod(file.fileno(), mode)  # mkstemp made it 0600; certificates are public
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        if force:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)  # fails if `path` appeared meanwhile: never overwrite
    except FileExistsError:
        raise InvalidArgument(f"{path} exists: refusing to overwrite it (--force does)") from None
    except OSError as error:
        raise RamsterError(f"{path}: cannot write: {error.strerror}") from None
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)
