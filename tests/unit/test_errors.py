"""How a caller's value shows in an error or a log line (`ramster.errors.shown`, issue 12).

Every caller-supplied string is cut to its first 64 characters, with an ellipsis and its length,
so a status message stays small and a log line one line; a short one, and a value of a bounded
type (a number, an oid), shows whole; any other repr is cut at 128 characters.
"""

from __future__ import annotations

import pytest

from ramster.errors import InvalidArgument, shown

U64_MAX = 2**64 - 1


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("app", "'app'"),
        ("a" * 64, repr("a" * 64)),
        ("a" * 65, f"'{'a' * 64}'... (65 characters)"),
        ("é" * 70000, f"'{'é' * 64}'... (70000 characters)"),
        ("line\n" * 20, "'" + "line\\n" * 12 + "line'... (100 characters)"),
        (b"\x00" * 100, f"{bytes(64)!r}... (100 bytes)"),
        (-5, "-5"),
        ((U64_MAX, U64_MAX, U64_MAX), f"({U64_MAX}, {U64_MAX}, {U64_MAX})"),
        (list(range(100)), f"{str(list(range(100)))[:128]}... (390 characters)"),
    ],
    ids=["short", "64", "65", "wide", "newlines", "bytes", "int", "oid", "list"],
)
def test_a_string_is_shown_whole_or_cut_to_64_characters_and_its_length(
    value: object, text: str
) -> None:
    assert shown(value) == text


def test_an_invalid_argument_names_the_field_with_the_value_cut() -> None:
    error = InvalidArgument.field("client", "c" * 300, "a name of at most 256 characters")
    assert error.message == (
        f"client '{'c' * 64}'... (300 characters) is invalid: expected a name of at most 256 "
        "characters"
    )
