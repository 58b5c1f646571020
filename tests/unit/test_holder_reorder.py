"""With two batches in flight, the copies of one key in both can reach the holder out of order:
the older version must not replace the newer, so the old copy's orphan flush (which names exactly
that older version) leaves the key's newer copy in place."""

from __future__ import annotations

from test_foreign import OID, ORIGIN, PERS_UID, holder, packed

from ramster.tmem.foreign import ForeignPage, flush_foreign_pages, get_foreign, put_foreign


def test_a_late_put_of_an_older_version_keeps_the_newer_copy() -> None:
    tmem, _ = holder()
    put_foreign(tmem, ORIGIN, [ForeignPage(PERS_UID, True, OID, 0, 9, packed(50))])  # batch 3
    put_foreign(tmem, ORIGIN, [ForeignPage(PERS_UID, True, OID, 0, 5, packed(0))])  # batch 1, late
    flush_foreign_pages(tmem, ORIGIN, [(PERS_UID, OID, 0, 5)])  # batch 1's orphan flush

    # The origin's handle names version 9 on this holder.
    assert get_foreign(tmem, ORIGIN, [(PERS_UID, OID, 0)]) == [(packed(50), 9)]
