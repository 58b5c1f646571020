"""When a node writes what it publishes to etcd again (`ramster.cluster.worth_publishing`): on any
change but free bytes, and on free bytes only once they moved by 1/32 of the budget or the node
ran full or has room again. Every write is an etcd revision kept until compaction."""

from __future__ import annotations

import dataclasses

import pytest

from nodemanager.model import MemberInfo
from ramster.cluster import FREE_BYTES_STEP, worth_publishing

BUDGET = 64 << 20
STEP = BUDGET // FREE_BYTES_STEP  # 2 MiB


def published(free: int = BUDGET // 2, **changes: object) -> MemberInfo:
    info = MemberInfo(1, "node1", "127.0.0.1:7470", "e1", BUDGET, free)
    return dataclasses.replace(info, **changes)


def test_nothing_published_yet_is_always_worth_publishing() -> None:
    assert worth_publishing(None, published()) is True


@pytest.mark.parametrize(
    ("free", "worth"),
    [
        (BUDGET // 2, False),
        (BUDGET // 2 + STEP - 1, False),
        (BUDGET // 2 - STEP + 1, False),
        (BUDGET // 2 + STEP, True),
        (BUDGET // 2 - STEP, True),
    ],
)
def test_free_bytes_are_published_once_they_moved_by_a_step(free: int, worth: bool) -> None:
    assert worth_publishing(published(), published(free)) is worth


def test_running_full_and_having_room_again_are_published_at_once() -> None:
    assert worth_publishing(published(1), published(0)) is True
    assert worth_publishing(published(0), published(1)) is True


@pytest.mark.parametrize(
    "change",
    [{"draining": True}, {"ramster": False}, {"zcache": False}, {"address": "10.0.0.1:7470"}],
)
def test_any_other_change_is_published_at_once(change: dict[str, object]) -> None:
    assert worth_publishing(published(), published(BUDGET // 2 + 1, **change)) is True
