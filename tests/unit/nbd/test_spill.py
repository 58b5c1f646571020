"""The spill file (`ramster.nbd.spill`): pages kept by export and block, read back byte-exact,
freed by block, by a range (a TRIM), or by export, never another export's; freed slots are
reused, and a full spill refuses a page and changes nothing."""

from __future__ import annotations

import os
from pathlib import Path

from ramster.nbd.spill import PAGE, Spill

A, B = 1, 2
"""Two exports' uids."""


def page(n: int) -> bytes:
    return bytes([n % 256]) * 16 + os.urandom(PAGE - 16)


def test_pages_read_back_by_export_and_block_and_a_range_frees_only_its_exports_blocks(
    tmp_path: Path,
) -> None:
    spill = Spill(str(tmp_path / "spill"), 8 * PAGE)
    pages = {(uid, block): page(block) for uid in (A, B) for block in (3, 70, 5000)}
    for (uid, block), data in pages.items():
        assert spill.store(uid, block, data)

    assert (spill.pages, spill.pages_of(A), spill.pages_of(B)) == (6, 3, 3)
    assert all(spill.load(uid, block) == data for (uid, block), data in pages.items())
    assert spill.load(A, 4) is None

    assert spill.drop(A, range(0, 100_000)) == 3  # more blocks than A has: matched against A's
    assert (spill.pages, spill.pages_of(A), spill.pages_of(B)) == (3, 0, 3)
    assert [spill.load(A, block) for block in (3, 70, 5000)] == [None, None, None]
    assert [spill.load(B, block) for block in (3, 70, 5000)] == [
        pages[B, 3],
        pages[B, 70],
        pages[B, 5000],
    ]

    assert spill.drop(B, [70, 71]) == 1
    assert spill.drop(A, [3]) == 0
    assert spill.drop_export(B) == 2
    assert spill.pages == 0
    assert repr(spill) == f"<Spill {tmp_path / 'spill'} pages=0/8>"


def test_a_block_stored_again_keeps_its_slot_and_freed_slots_are_reused_before_a_full_refusal(
    tmp_path: Path,
) -> None:
    spill = Spill(str(tmp_path / "spill"), 2 * PAGE)
    first, second, third = page(1), page(2), page(3)
    assert spill.store(A, 0, first) and spill.store(A, 1, second)
    assert spill.store(A, 0, third)  # the same block again: no slot more
    assert not spill.store(B, 9, first)  # full: refused, nothing changed
    assert (spill.pages, spill.load(A, 0), spill.load(A, 1), spill.load(B, 9)) == (
        2,
        third,
        second,
        None,
    )
    assert spill.drop(A, range(1, 2)) == 1
    assert spill.store(B, 9, first)  # the slot block 1 freed
    assert (spill.load(A, 0), spill.load(B, 9)) == (third, first)
    assert os.path.getsize(tmp_path / "spill") == 2 * PAGE
    assert spill.counters == {"nbd_spill_stores": 4, "nbd_spill_loads": 4, "nbd_spill_full": 1}
