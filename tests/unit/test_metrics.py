"""The node's counters as Prometheus metrics (`ramster.metrics`): their names, kinds, units and
help lines, rendered from a registry in process (a real node's endpoint: tests/integration)."""

from __future__ import annotations

from prometheus_client import generate_latest

from ramster.metrics import NodeMetrics, metric_name


def test_names_keep_the_kernels_with_prometheus_suffixes_and_units() -> None:
    names = (
        *("frontswap_succ_stores", "flush_total", "pers_pages_at_risk", "eph_zpages_max"),
        *("obj_count", "obj_count_max", "pool_count", "client_count"),
        *("eph_zbytes", "pers_zbytes", "eph_zbytes_max", "pers_zbytes_max"),
        "remotify_busy_microseconds",
    )
    assert [metric_name(name) for name in names] == [
        *("ramster_frontswap_succ_stores_total", "ramster_flush_total"),
        *("ramster_pers_pages_at_risk", "ramster_eph_zpages_max"),
        *("ramster_objects", "ramster_obj_count_max", "ramster_pools", "ramster_clients"),
        *("ramster_eph_compressed_bytes", "ramster_pers_compressed_bytes"),
        *("ramster_eph_compressed_bytes_max", "ramster_pers_compressed_bytes_max"),
        "ramster_remotify_busy_seconds_total",
    ]


def test_counters_are_rendered_with_their_help_kind_and_unit() -> None:
    counters = {"pers_zbytes": 8192, "frontswap_loads": 3, "remotify_busy_microseconds": 1500}
    metrics = NodeMetrics('n"1', lambda: counters)
    lines = generate_latest(metrics.registry).decode().splitlines()
    ours = [line for line in lines if "ramster_" in line and "ramster_build" not in line]
    assert ours == [
        "# HELP ramster_frontswap_loads_total Frontswap loads that found the page."
        " (ramster stats: frontswap_loads)",
        "# TYPE ramster_frontswap_loads_total counter",
        'ramster_frontswap_loads_total{node="n\\"1"} 3.0',
        "# HELP ramster_pers_compressed_bytes Bytes of compressed persistent pages in the store."
        " (ramster stats: pers_zbytes)",
        "# TYPE ramster_pers_compressed_bytes gauge",
        'ramster_pers_compressed_bytes{node="n\\"1"} 8192.0',
        "# HELP ramster_remotify_busy_seconds_total Time spent shipping pages to peers."
        " (ramster stats: remotify_busy_microseconds)",
        "# TYPE ramster_remotify_busy_seconds_total counter",
        'ramster_remotify_busy_seconds_total{node="n\\"1"} 0.0015',
    ]
    assert 'ramster_build_info{node="n\\"1",python=' in "\n".join(lines)
