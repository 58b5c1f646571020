"""The RAMster client library: applications' access to a node's far memory over gRPC.

`Client` (asyncio) and `SyncClient` (blocking) offer raw tmem by (pool, oid, index): pools,
put/get/flush of single pages (concurrent calls coalesced into batched RPCs) and of batches, plus
the node's stats, params, state, and the quotas of client identities and what their pages take
(`Quotas`, `Usage`); `TLS` names the files a client proves itself with to a node that serves
TLS. `Frontswap` and `Cleancache` are the kernel's frontends over
a node, usable before the node exists: they attach when its zcache backend is loaded and again
after it restarts. Every error is a `RamsterError` subclass; `retriable` says whether retrying
may help.

Not here: the node (`ramster.node`), the pure tmem rules and frontends (`ramster.tmem`,
`ramster.frontends`), the wire contracts (`proto/ramster/api/v1`).
"""

from ramster.client._async import Client
from ramster.client._frontends import Cleancache, Frontswap
from ramster.client._sync import SyncClient
from ramster.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InternalError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    PoolNotFound,
    RamsterError,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from ramster.state import NodeState
from ramster.tmem.quota import Quotas, Usage
from ramster.wire.tls import TLS

__all__ = [
    "TLS",
    "Cleancache",
    "Client",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Frontswap",
    "InternalError",
    "InvalidArgument",
    "NodeState",
    "NotFound",
    "PermissionDenied",
    "PoolNotFound",
    "Quotas",
    "RamsterError",
    "ResourceExhausted",
    "SyncClient",
    "Unauthenticated",
    "Unavailable",
    "Usage",
]
