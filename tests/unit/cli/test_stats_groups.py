"""`ramster.cli.stats_groups`: every counter in exactly one group."""

from __future__ import annotations

from ramster.cli.stats_groups import GROUPS, OTHER, grouped, groups_of
from ramster.metric_help import HELP


def test_every_counter_is_in_exactly_one_group() -> None:
    misplaced = {name: groups_of(name) for name in HELP if len(groups_of(name)) != 1}
    assert misplaced == {}


def test_every_group_holds_counters() -> None:
    assert sorted({groups_of(name)[0] for name in HELP}) == sorted(GROUPS)


def test_counters_keep_the_help_order_in_their_group_and_unknown_ones_show_last() -> None:
    counters = {"pers_zpages": 2, "eph_zpages": 1, "frontswap_loads": 3, "new_counter": 4}
    assert grouped(counters) == {
        "memory": {"eph_zpages": 1, "pers_zpages": 2},
        "pages": {},
        "cluster and copies": {},
        "frontends": {"frontswap_loads": 3},
        OTHER: {"new_counter": 4},
    }
