"""Pure tmem semantics: keys, pools, objects and the put/get/flush rules (reference §A1).

Not here: how page bytes are held (`ramster.zcache`), the frontends (`ramster.frontends`), and
anything that does I/O. This package imports neither gRPC nor generated code.
"""

from ramster.tmem.elsewhere import Elsewhere, Nowhere
from ramster.tmem.host import Hit, Tmem
from ramster.tmem.keys import INVALID_OID, Oid, PoolSpec, TmemLimits, as_oid
from ramster.tmem.store import Created, PageStore, Rejected, RejectReason
from ramster.tmem.table import PageTable, PutOutcome, Stored

__all__ = [
    "INVALID_OID",
    "Created",
    "Elsewhere",
    "Hit",
    "Nowhere",
    "Oid",
    "PageStore",
    "PageTable",
    "PoolSpec",
    "PutOutcome",
    "RejectReason",
    "Rejected",
    "Stored",
    "Tmem",
    "TmemLimits",
    "as_oid",
]
