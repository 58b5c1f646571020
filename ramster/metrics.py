"""Prometheus metrics: counters rendered at scrape time, served over a minimal HTTP endpoint.

Names are ``ramster_<kernel name>``; monotonic counters end in ``_total``, levels (pages and
bytes held, maxima, budget) are gauges. Every sample carries the node's name as a label.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger("ramster.metrics")

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

RENAMED = {"obj_count": "objects", "pool_count": "pools", "client_count": "clients"}
"""Levels whose kernel names end in ``_count``, a suffix Prometheus keeps for histograms."""


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


def render(counters: dict[str, int], node: str) -> str:
    """The text exposition format (version 0.0.4) of `counters`."""
    label = node.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    lines = []
    for name in sorted(counters):
        metric = metric_name(name)
        kind = "gauge" if is_gauge(name) else "counter"
        lines.append(f"# HELP {metric} the {kind} {name} (DESIGN §10)")
        lines.append(f"# TYPE {metric} {kind}")
        value = counters[name]
        shown = f"{value / 1e6:.6f}" if name.endswith(MICROSECONDS) else str(value)
        lines.append(f'{metric}{{node="{label}"}} {shown}')
    return "\n".join(lines) + "\n"


async def serve_metrics(
    host: str, port: int, collect: Callable[[], dict[str, int]], node: str
) -> asyncio.Server:
    """Serve ``GET /metrics`` on (host, port); 404 for any other path."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), timeout=5)
            while (await asyncio.wait_for(reader.readline(), timeout=5)) not in (b"\r\n", b""):
                pass
            parts = request_line.decode("latin-1").split()
            if len(parts) >= 2 and parts[0] == "GET" and parts[1].split("?")[0] == "/metrics":
                status, body = "200 OK", render(collect(), node).encode()
            else:
                status, body = "404 Not Found", b"not found: try /metrics\n"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError) as error:
            log.debug("metrics request dropped: %s", error)
        finally:
            writer.close()

    return await asyncio.start_server(answer, host, port)
