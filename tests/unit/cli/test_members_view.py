"""``ramster members`` as a person and a script read it: a row per member, in fixed columns off
a terminal."""

from __future__ import annotations

import io

from nodemanager.model import MemberInfo
from ramster.cli.admin import show_members
from ramster.cli.view import console
from ramster.units import MiB


def drawn(members: list[MemberInfo]) -> list[str]:
    out = io.StringIO()
    show_members(console(out), members)
    return [line.rstrip() for line in out.getvalue().splitlines()]


def test_members_are_a_row_each_with_free_bytes_switches_and_state() -> None:
    alpha = MemberInfo(3, "alpha", "10.0.0.1:7470", "e1", 64 * MiB, 48 * MiB)
    beta = MemberInfo(
        12, "b", "[::1]:7471", "e", 1024 * MiB, 0, zcache=False, ramster=False, draining=True
    )
    assert drawn([alpha, beta]) == [
        "number   name    address         free/capacity MiB   zcache   ramster   state",
        "─" * 80,
        "     3   alpha   10.0.0.1:7470           48.0/64.0   on       on        up",
        "    12   b       [::1]:7471             0.0/1024.0   off      off       draining",
    ]


def test_no_members_is_the_header_alone() -> None:
    assert drawn([]) == [
        "number   name   address   free/capacity MiB   zcache   ramster   state",
        "─" * 70,
    ]
