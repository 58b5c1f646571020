"""The groups ``ramster stats`` shows a node's counters in, decided by their kernel names: the
memory of the compressed store, the pages of tmem's pools and clients, the cluster and the copies
of persistent pages, and the frontends that put and get pages (cleancache, frontswap, NBD).

tests/unit/cli/test_stats_groups.py holds every counter of `ramster.metric_help.HELP` to exactly
one group; a counter a node serves that no group names is shown under `OTHER` rather than hidden.
"""

from __future__ import annotations

from ramster.metric_help import HELP

GROUPS: dict[str, tuple[str, ...]] = {
    "memory": (
        "eph_z",
        "pers_z",
        "evicted_eph_zpages",
        "used_bytes",
        "memory_bytes",
        "compress_poor",
        "mean_compress_poor",
        "failed_eph_puts",
        "failed_pers_puts",
        "eph_ate_tail",
        "pers_ate_eph",
        "zero_filled_pages",
        "same_filled_pages",
        "lz4_",
        "zstd_",
        "zcache_on",
        "backend_generation",
    ),
    "pages": ("obj_count", "pool_count", "client_", "flush_", "flobj_", "put_quota"),
    "cluster and copies": (
        "remote_",
        "remotify_",
        "eph_pages_remote",
        "pers_pages_",
        "pers_copies_made",
        "pers_puts_unreplicated",
        "repair_rounds",
        "peers_written_off",
        "origins_forgotten",
        "foreign_",
        "node_number",
        "ramster_on",
    ),
    "frontends": ("cleancache_", "frontswap_", "nbd_"),
}
"""Each group's name prefixes (a whole name is its own prefix)."""

OTHER = "other"
"""The group of a counter no prefix names (a test fails for any of `HELP`)."""


def groups_of(name: str) -> list[str]:
    """The groups whose prefixes name counter `name`: one, for a counter that is grouped."""
    return [group for group, prefixes in GROUPS.items() if name.startswith(prefixes)]


def grouped(counters: dict[str, int]) -> dict[str, dict[str, int]]:
    """`counters` by group, in `GROUPS` order then `OTHER` if any; in a group, in the order of
    `HELP` (which keeps related counters together), then by name."""
    order = {name: index for index, name in enumerate(HELP)}
    result: dict[str, dict[str, int]] = {group: {} for group in (*GROUPS, OTHER)}
    for name in sorted(counters, key=lambda name: (order.get(name, len(order)), name)):
        result[(groups_of(name) or [OTHER])[0]][name] = counters[name]
    if not result[OTHER]:
        del result[OTHER]
    return result
