"""Prometheus metrics of a node, with prometheus-client: its registry and its /metrics endpoint.

The node's counters (`ramster stats`) are read at scrape time: names are ``ramster_<kernel
name>``, monotonic counters end in ``_total``, levels (pages and bytes held, maxima, budget) are
gauges, and every sample carries the node's name as the label ``node``. Beside them the registry
has prometheus-client's default collectors (``process_*``: RSS, CPU, open fds; ``python_*``),
``ramster_build_info`` and whatever the node registers itself (the gRPC call metrics,
`ramster.rpc.call_metrics`).

The endpoint is prometheus-client's HTTP server, in a thread of its own; the counters are read on
the node's event loop, which owns them (a scrape waits for the loop, at most `SCRAPE_TIMEOUT`).
"""

from __future__ import annotations

import asyncio
import platform
from collections.abc import Callable, Iterator
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Info, disable_created_metrics, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from ramster import __version__
from ramster.metric_help import HELP

GAUGES = frozenset(
    {
        "eph_zpages",
        "pers_zpages",
        "eph_zbytes",
        "pers_zbytes",
        "used_bytes",
        "memory_bytes",
        "obj_count",
        "pool_count",
        "client_count",
        "backend_generation",
        "zcache_on",
        "lz4_zpages",
        "lz4_zbytes",
        "lz4_bytes",
        "zstd_zpages",
        "zstd_zbytes",
        "zstd_bytes",
        "zstd_dict_bytes",
        "ramster_on",
        "foreign_eph_pages",
        "foreign_pers_pages",
        "remote_pages",
        "remote_pers_pages",
        "pers_pages_replicated",
        "pers_pages_at_risk",
        "remotify_active",
        "node_number",
        "remote_target_down",
        "nbd_exports",
        "nbd_spilled_pages",
    }
)

RENAMED = {
    # Levels whose kernel names end in ``_count``, a suffix Prometheus keeps for histograms.
    "obj_count": "objects",
    "pool_count": "pools",
    "client_count": "clients",
    # Bytes end in ``_bytes``, Prometheus' unit suffix: the kernel's ``zbytes`` are compressed.
    "eph_zbytes": "eph_compressed_bytes",
    "pers_zbytes": "pers_compressed_bytes",
    "eph_zbytes_max": "eph_compressed_bytes_max",
    "pers_zbytes_max": "pers_compressed_bytes_max",
    "lz4_zbytes": "lz4_compressed_bytes",
    "zstd_zbytes": "zstd_compressed_bytes",
}
"""Metric names (without ``ramster_``) other than the kernel's, listed in docs/metrics.md."""

SCRAPE_TIMEOUT = 5.0
"""Seconds a scrape waits for the event loop to read the counters."""


def is_gauge(name: str) -> bool:
    return name in GAUGES or name.endswith("_max")


MICROSECONDS = "_microseconds"
"""Counters of time are kept in whole microseconds; Prometheus gets seconds, its base unit."""


def metric_name(name: str) -> str:
    base = RENAMED.get(name, name)
    if base.endswith(MICROSECONDS):
        base = base.removesuffix(MICROSECONDS) + "_seconds"
    if is_gauge(name) or name.endswith("_total"):
        return f"ramster_{base}"
    return f"ramster_{base}_total"


def help_of(name: str) -> str:
    """The help line of the counter `name` (kernel name kept in it, for `ramster stats`)."""
    return f"{HELP.get(name, 'A counter of the node.')} (ramster stats: {name})"


class _Counters(Collector):
    """The node's counters as metric families, read on the event loop that owns them."""

    def __init__(self, read: Callable[[], dict[str, int]], node: str) -> None:
        self._read = read
        self._node = node
        self.loop: asyncio.AbstractEventLoop | None = None
        """The loop that owns the counters (None: read them in the caller's thread)."""

    def _counters(self) -> dict[str, int]:
        if self.loop is None or _running_loop() is self.loop:
            return self._read()
        future = asyncio.run_coroutine_threadsafe(_called(self._read), self.loop)
        return future.result(timeout=SCRAPE_TIMEOUT)

    def collect(self) -> Iterator[Metric]:
        counters = self._counters()
        for name in sorted(counters):
            value = counters[name]
            if name.endswith(MICROSECONDS):
                value = value / 1e6  # type: ignore[assignment]
            family: CounterMetricFamily | GaugeMetricFamily
            kind = GaugeMetricFamily if is_gauge(name) else CounterMetricFamily
            family = kind(metric_name(name), help_of(name), labels=["node"])
            family.add_metric([self._node], value)
            yield family


async def _called(read: Callable[[], dict[str, int]]) -> dict[str, int]:
    return read()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class NodeMetrics:
    """The registry of one node (named `node`, its counters read by `read`) and, once `serve`d,
    its /metrics endpoint."""

    def __init__(self, node: str, read: Callable[[], dict[str, int]]) -> None:
        # ``*_created`` series double every counter's and histogram's series; no dashboard or
        # alert here reads them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        # Each node has its registry (tests run several in one process): prometheus-client's
        # default collectors, registered anew in it.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        build = Info(
            "ramster_build",
            "The node's version and Python (value 1).",
            ["node"],
            registry=self.registry,
        )
        build.labels(node=node).info({"version": __version__, "python": platform.python_version()})
        self._counters = _Counters(read, node)
        self.registry.register(self._counters)
        self._server: WSGIServer | None = None
        self._thread: Thread | None = None

    async def serve(self, host: str, port: int) -> None:
        """Serve the registry on (host, port), any path, from a thread; raises OSError if the
        address cannot be bound."""
        self._counters.loop = asyncio.get_running_loop()
        self._server, self._thread = start_http_server(port, host, self.registry)

    @property
    def address(self) -> str | None:
        """``HOST:PORT`` served (the port bound), or None if not serving."""
        if self._server is None:
            return None
        host, port = self._server.socket.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def close(self) -> None:
        """Stop serving (a scrape in progress finishes)."""
        server, self._server = self._server, None
        if server is not None:
            await asyncio.to_thread(server.shutdown)
            server.server_close()
