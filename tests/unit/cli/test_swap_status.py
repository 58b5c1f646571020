"""``ramster swap status`` of devices whose ``swap on`` stopped early, as a script reads it."""

from __future__ import annotations

import io
from pathlib import Path

from ramster.cli.swap import _status
from ramster.swap.record import SwapRecord


def test_status_draws_a_row_per_device_in_fixed_columns(tmp_path: Path) -> None:
    """Two devices without an export of a node (a URI given) or a loop device: no usage, no
    pages to ask for; the table is the same on every machine off a terminal."""
    for name, done in (("swap0", ()), ("swap1", ("fuse",))):
        (tmp_path / name).mkdir()
        SwapRecord(name, tmp_path / name, uri="nbd+unix:///x", done=done).save()
    out = io.StringIO()
    assert _status(tmp_path, None, None, out) == 0
    assert [line.rstrip() for line in out.getvalue().splitlines()] == [
        "device   loop   size   used   prio   in/s   out/s   pages   spilled   done",
        "─" * 74,
        "swap0    -        0B     0B      0      0       0       -         -   -",
        "swap1    -        0B     0B      0      0       0       -         -   fuse",
    ]
