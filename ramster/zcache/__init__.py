"""The compressed page store (docs/design.md §4, reference §A4): lz4, admission, budget, eviction.

`ZCache` is the node's store; `PlainStore` is the uncompressed reference it is tested against.
Both implement `ramster.tmem.PageStore`. Not here: tmem keys and rules (`ramster.tmem`), the
page codec (`ramster.page`), moving pages to peers (`ramster.remote`).
"""

from ramster.zcache.config import ZcacheConfig
from ramster.zcache.counters import ZcacheCounters
from ramster.zcache.plain import PlainStore
from ramster.zcache.store import ZCache

__all__ = ["PlainStore", "ZCache", "ZcacheConfig", "ZcacheCounters"]
