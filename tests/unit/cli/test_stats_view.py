"""``ramster stats`` as printed (`ramster.cli.admin.show_stats`, `stats_json`): exact text off a
terminal, and the keys a script reads."""

from __future__ import annotations

import io
import json

from ramster.cli.admin import show_stats, stats_json
from ramster.cli.view import console
from ramster.state import NodeState

STATE = NodeState(
    node_name="n1", epoch="e1", backend_generation=1, zcache=True, ramster=True,
    shutting_down=False,
)  # fmt: skip
COUNTERS = {"pers_zpages": 2048, "eph_zpages": 10, "frontswap_loads": 7, "remote_pages": 3}


def shown(raw: bool) -> str:
    out = io.StringIO()
    show_stats(console(out), "127.0.0.1:7470", STATE, COUNTERS, raw)
    return out.getvalue()


def test_counters_show_in_groups_saying_what_they_count() -> None:
    # rich pads each row to the table's width: the words and their columns are what counts.
    lines = [line.rstrip() for line in shown(raw=False).splitlines()]
    assert lines == [
        "node n1 at 127.0.0.1:7470: epoch e1, zcache on (generation 1), ramster on",
        "counter                                           value",
        "─" * 55,
        "memory:",
        "  Ephemeral pages held compressed in the store       10",
        "  Persistent pages held compressed in the store   2,048",
        "cluster and copies:",
        "  Pages of this node held by peers                    3",
        "frontends:",
        "  Frontswap loads that found the page                 7",
    ]


def test_raw_shows_kernel_names_one_a_line() -> None:
    assert shown(raw=True) == (
        "node n1 at 127.0.0.1:7470: epoch e1, zcache on (generation 1), ramster on\n"
        "  eph_zpages                     10\n"
        "  frontswap_loads                 7\n"
        "  pers_zpages                 2,048\n"
        "  remote_pages                    3\n"
    )


def test_json_has_the_state_and_the_counters_by_group() -> None:
    parsed = json.loads(json.dumps(stats_json(STATE, COUNTERS, raw=False)))
    assert parsed == {
        "state": {
            "node_name": "n1", "epoch": "e1", "backend_generation": 1, "zcache": True,
            "ramster": True, "shutting_down": False,
        },
        "groups": {
            "memory": {"eph_zpages": 10, "pers_zpages": 2048},
            "pages": {},
            "cluster and copies": {"remote_pages": 3},
            "frontends": {"frontswap_loads": 7},
        },
    }  # fmt: skip


def test_raw_json_has_the_counters_by_name() -> None:
    assert stats_json(STATE, COUNTERS, raw=True)["counters"] == COUNTERS
