"""Which compressed pages zcache admits (reference §A4.5), as one pure decision.

Ephemeral pages above `max_zsize_eph` are refused (`compress_poor`). Persistent pages above
`max_zsize_pers` are refused (`compress_poor`), and so are those above `max_mean_zsize` while the
mean of the stored persistent pages is above it too (`mean_compress_poor`): poorly compressible
pages get in only while the average stays good. Limits scale with the page size.
"""

from __future__ import annotations

from ramster.tmem.store import RejectReason
from ramster.zcache.config import ZcacheConfig

REFERENCE_PAGE = 4096


def admission_refusal(
    config: ZcacheConfig,
    zsize: int,
    page_size: int,
    persistent: bool,
    pers_zbytes: int,
    pers_zpages: int,
) -> RejectReason | None:
    """Why a page of compressed size `zsize` is refused, or None if it is admitted."""
    if not persistent:
        if zsize * REFERENCE_PAGE > config.max_zsize_eph * page_size:
            return RejectReason.COMPRESS_POOR
        return None
    if zsize * REFERENCE_PAGE > config.max_zsize_pers * page_size:
        return RejectReason.COMPRESS_POOR
    mean_limit = config.max_mean_zsize * page_size
    if (
        zsize * REFERENCE_PAGE > mean_limit
        and pers_zpages
        and pers_zbytes * REFERENCE_PAGE > mean_limit * pers_zpages
    ):
        return RejectReason.MEAN_COMPRESS_POOR
    return None
