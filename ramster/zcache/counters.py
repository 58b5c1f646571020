"""`ZcacheCounters`: the compressed store's counters, by the kernel's debugfs names (§C2)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class ZcacheCounters:
    """zcache's counters, by the kernel's debugfs names (reference §C2)."""

    eph_zpages: int = 0
    eph_zpages_max: int = 0
    pers_zpages: int = 0
    pers_zpages_max: int = 0
    eph_zbytes: int = 0
    eph_zbytes_max: int = 0
    pers_zbytes: int = 0
    pers_zbytes_max: int = 0
    compress_poor: int = 0
    mean_compress_poor: int = 0
    failed_eph_puts: int = 0
    failed_pers_puts: int = 0
    evicted_eph_zpages: int = 0
    eph_ate_tail: int = 0
    eph_ate_tail_failed: int = 0
    pers_ate_eph: int = 0
    pers_ate_eph_failed: int = 0
    zero_filled_pages: int = 0
    same_filled_pages: int = 0
    # This node's own pages by codec (not same-filled, not held for peers): pages, their bytes
    # packed and unpacked, for bytes per page and the ratio of each codec.
    lz4_zpages: int = 0
    lz4_zbytes: int = 0
    lz4_bytes: int = 0
    zstd_zpages: int = 0
    zstd_zbytes: int = 0
    zstd_bytes: int = 0
