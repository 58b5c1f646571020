"""The tmem frontends: cleancache (ephemeral, a victim cache of clean pages) and frontswap
(persistent swap pages), with the lazy initialisation of Linux 3.10 (reference §A2, §A3).

A frontend records mounts and swapons until a backend registers, then replays them; `shims` turns
its ops into raw tmem calls on any `TmemApi` (in process or over gRPC); `selfshrink` brings
swapped pages home when swapping stops growing. Pure: no I/O, and the only async code is the
self-shrink loop driver. Not here: the tmem rules (`ramster.tmem`), the page store
(`ramster.zcache`), the client library (`ramster.client`).
"""

from ramster.frontends.cleancache import Cleancache
from ramster.frontends.frontswap import Frontswap, SwapIn
from ramster.frontends.ops import CleancacheOps, FrontswapOps, TmemApi
from ramster.frontends.selfshrink import SelfShrinkConfig, SelfShrinkPolicy, run_selfshrink
from ramster.frontends.shims import TmemCleancacheOps, TmemFrontswapOps

__all__ = [
    "Cleancache",
    "CleancacheOps",
    "Frontswap",
    "FrontswapOps",
    "SelfShrinkConfig",
    "SelfShrinkPolicy",
    "SwapIn",
    "TmemApi",
    "TmemCleancacheOps",
    "TmemFrontswapOps",
    "run_selfshrink",
]
