"""Issue 14's and issue 16's targets, each checked against the figures of this run's sections.

Every section returns the figures the targets need (a name -> value dict); this table puts
them together at the end of `make bench`, so a verdict never compares figures of two runs.
Where the issue's target and docs/design.md §12's differ for the same measure, the issue's stands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tests.bench.table import print_table, verdict

Figures = dict[str, float]


@dataclass(frozen=True)
class Target:
    """One line of the issue: what is measured, as shown, its bound, and whether it is met."""

    what: str
    measured: Callable[[Figures], str]
    bound: str
    met: Callable[[Figures], bool]
    needs: tuple[str, ...]

    def row(self, figures: Figures) -> list[object]:
        if any(name not in figures for name in self.needs):  # a section that did not run
            return [self.what, "(not measured)", self.bound, "-"]
        return [self.what, self.measured(figures), self.bound, verdict(self.met(figures))]


def _ratio(what: str, name: str, bound: float, at_most: bool = False) -> Target:
    """A target on the ratio `name`: at least `bound`, or at most."""
    return Target(
        what,
        measured=lambda f: f"{f[name]:.2f}x",
        bound=f"{'<=' if at_most else '>='} {bound}x",
        met=lambda f: f[name] <= bound if at_most else f[name] >= bound,
        needs=(name,),
    )


ISSUE_14 = (
    _ratio("64-page put vs redis-py MSET, one call at a time", "put_x_mset", 0.7),
    _ratio("64-page get vs redis-py MGET, one call at a time", "get_x_mget", 0.5),
    _ratio("bulk put_many (256k) vs pipelined MSET, as many in flight", "bulk_put_x", 1.0),
    _ratio("bulk get_many (256k) vs pipelined MGET, as many in flight", "bulk_get_x", 1.0),
    _ratio("put with 2 copies vs 1 copy (64-page calls)", "two_copies_x", 0.8),
    _ratio("batched get of remote pages vs local", "remote_x_local", 0.7),
    Target(
        "remotify, one node to its low watermark",
        lambda f: f"{f['remotify_rate']:,.0f} pages/s",
        ">= 60,000 pages/s",
        lambda f: f["remotify_rate"] >= 60_000,
        ("remotify_rate",),
    ),
    Target(
        "single get p50 vs the raw gRPC unary round trip of one page",
        lambda f: (
            f"{f['single_get_p50_ms']:.3f} ms vs {f['floor_single_p50_ms']:.3f} ms = "
            f"{f['single_get_p50_ms'] / f['floor_single_p50_ms']:.2f}x"
        ),
        "<= 1.2x",
        lambda f: f["single_get_p50_ms"] <= 1.2 * f["floor_single_p50_ms"],
        ("single_get_p50_ms", "floor_single_p50_ms"),
    ),
    _ratio("64 concurrent single gets (coalesced) vs batched", "coalesced_x", 0.8),
    _ratio("node RSS per stored page vs the ideal lz4 size", "rss_x_ideal", 1.05, True),
    Target(
        "kernel swap through NBD, RAMster 2 copies vs nbdkit memory (median of rounds)",
        lambda f: f"{f['swap_two_copies_x']:.2f}x",
        "> 0.43x (issue 13's, before)",
        lambda f: f["swap_two_copies_x"] > 0.43,
        ("swap_two_copies_x",),
    ),
)


ISSUE_16 = tuple(
    target
    for prefix, pool in (("zstd", "zstd"), ("dict", "zstd pool with a trained dictionary"))
    for target in (
        _ratio(f"{pool} vs lz4: bytes per stored page (RSS)", f"{prefix}_bytes_x", 0.65, True),
        _ratio(f"{pool} vs lz4: batched put (64-page calls)", f"{prefix}_put_x", 0.6),
        _ratio(f"{pool} vs lz4: batched get (64-page calls)", f"{prefix}_get_x", 0.8),
    )
)
"""The issue's targets are for zstd with a dictionary; plain zstd is measured beside it (on a
corpus where no dictionary packs smaller, the node uses none, and the two are alike)."""


def run(figures: Figures, issues: tuple[int, ...] = (14, 16)) -> None:
    """The table of each issue's targets, met or not by `figures`."""
    for issue, targets in ((14, ISSUE_14), (16, ISSUE_16)):
        if issue in issues:
            print_table(
                f"targets (issue {issue}), this run",
                ["what", "measured", "target", "verdict"],
                [target.row(figures) for target in targets],
            )
