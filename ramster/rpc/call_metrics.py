"""How long each gRPC method of the node takes and how its calls end, for /metrics.

Every call of the node's services (Tmem, Admin, Peer) passes the access guard
(`ramster.rpc.access.guarded`), which times it from before its caller is checked to its answer
and records it here once: its latency in ``ramster_grpc_server_handling_seconds`` (a histogram
by service and method) and its status in ``ramster_grpc_server_handled_total`` (by service,
method and code; refusals of the guard count too). A server-streaming call is timed until its
stream ends. A call the client cancelled or whose deadline passed counts as CANCELLED: the server
cannot tell them apart. Per call this costs a dictionary lookup, a histogram observation and a
counter increment (the labelled children are made once per method and code).
"""

from __future__ import annotations

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram

LATENCY_BUCKETS = (
    *(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05),
    *(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
"""Seconds: a page in memory answers in tens of microseconds, a batch or a peer's in a
millisecond or more; above 10 s is a stuck call."""

LABELS = ("node", "grpc_service", "grpc_method")


class MethodMetrics:
    """The metrics of one method: `record` each call's end."""

    def __init__(self, calls: CallMetrics, service: str, method: str) -> None:
        self._labels = (calls.node, service, method)
        self._latency = calls.latency.labels(*self._labels)
        self._handled = calls.handled
        self._codes: dict[grpc.StatusCode, Counter] = {}

    def record(self, code: grpc.StatusCode, seconds: float) -> None:
        self._latency.observe(seconds)
        counter = self._codes.get(code)
        if counter is None:
            counter = self._codes[code] = self._handled.labels(*self._labels, code.name)
        counter.inc()


class CallMetrics:
    """The gRPC call metrics of the node `node`, registered in `registry`."""

    def __init__(self, node: str, registry: CollectorRegistry) -> None:
        self.node = node
        self.latency = Histogram(
            "ramster_grpc_server_handling_seconds",
            "Seconds from a gRPC call's arrival to its answer (a stream: to its end).",
            LABELS,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.handled = Counter(
            "ramster_grpc_server_handled_total",
            "gRPC calls answered, by status code.",
            (*LABELS, "grpc_code"),
            registry=registry,
        )
        self._methods: dict[str, MethodMetrics] = {}

    def method(self, path: str) -> MethodMetrics:
        """The metrics of the method `path` (``/package.Service/Method``)."""
        found = self._methods.get(path)
        if found is None:
            service, _, method = path.lstrip("/").rpartition("/")
            found = self._methods[path] = MethodMetrics(self, service, method)
        return found
