"""`ramster.wire.bearer`: a token given as text or as its file, and read back from metadata."""

from __future__ import annotations

from pathlib import Path

import pytest

from ramster.errors import InvalidArgument, Unauthenticated
from ramster.wire.bearer import bearer_token, load_token, metadata_of

TOKEN = "rt1.eyJuYW1lIjoiYXBwIn0.c2ln"


def test_a_token_is_taken_as_text_or_read_from_its_file(tmp_path: Path) -> None:
    file = tmp_path / "app.token"
    file.write_text(f"{TOKEN}\n")
    assert load_token(TOKEN) == TOKEN
    assert load_token(file) == TOKEN
    assert load_token(str(file)) == TOKEN


def test_a_token_that_is_no_token_is_refused(tmp_path: Path) -> None:
    not_a_token = tmp_path / "app.key"
    not_a_token.write_text("-----BEGIN PRIVATE KEY-----\n")
    refusals = []
    for value in (tmp_path / "absent.token", not_a_token, "rt1.a b", 7):
        with pytest.raises(InvalidArgument) as refused:
            load_token(value)  # type: ignore[arg-type]
        refusals.append(refused.value.message)
    assert refusals == [
        f"token file {str(tmp_path / 'absent.token')!r} is invalid: No such file or directory",
        f"token file {str(not_a_token)!r} is invalid: expected one line starting with 'rt1.', "
        "as `ramster certs issue ... --token` writes",
        "token is invalid: a token is printable ASCII without spaces (starts 'rt1.a b'...)",
        "token 7 is invalid: expected a token (rt1...) or the path of a .token file",
    ]


def test_a_token_travels_as_a_bearer_authorization() -> None:
    assert metadata_of(None) == ()
    assert bearer_token([("x-trace", "1"), *metadata_of(TOKEN)]) == TOKEN
    assert bearer_token([("x-trace", "1")]) is None
    for metadata in ([("authorization", "Basic abc")], [("authorization", "Bearer ")]):
        with pytest.raises(Unauthenticated) as refused:
            bearer_token(metadata)
        assert refused.value.message == (
            "call metadata 'authorization' is invalid: expected one 'Bearer <token>'"
        )
