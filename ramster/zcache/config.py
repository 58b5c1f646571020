"""`ZcacheConfig`: the compressed store's settings, frozen and validated."""

from __future__ import annotations

from dataclasses import dataclass

from ramster.errors import InvalidArgument

MIN_MEMORY = 64 * 1024


@dataclass(frozen=True, slots=True)
class ZcacheConfig:
    """Settings of one node's page store. Sizes of compressed pages are for 4 KiB pages and
    scale with a pool's page size.

    memory: bytes the store may use for pages and their metadata, local and foreign (>= 64 KiB).
    max_zsize_eph: an ephemeral page compressing above this many bytes is refused (4000).
    max_zsize_pers: a persistent page compressing above this many bytes is refused (3584).
    max_mean_zsize: a persistent page above this size is refused while the mean size of the
        stored persistent pages is above it too (2560).
    high_watermark: fraction of `memory` above which pages are shipped to peers (0.9).
    low_watermark: fraction of `memory` that shipping brings the store back under (0.8).
    """

    memory: int
    max_zsize_eph: int = 4000
    max_zsize_pers: int = 3584
    max_mean_zsize: int = 2560
    high_watermark: float = 0.9
    low_watermark: float = 0.8

    def __post_init__(self) -> None:
        if not isinstance(self.memory, int) or self.memory < MIN_MEMORY:
            raise InvalidArgument.field("memory", self.memory, f"bytes >= {MIN_MEMORY}")
        for name in ("max_zsize_eph", "max_zsize_pers", "max_mean_zsize"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 <= value <= 4096:
                raise InvalidArgument.field(name, value, "bytes in 1..4096")
        if not 0 < self.low_watermark < self.high_watermark <= 1:
            raise InvalidArgument(
                f"watermarks low {self.low_watermark} and high {self.high_watermark} are "
                "invalid: expected 0 < low < high <= 1"
            )
