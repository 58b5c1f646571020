"""`ramster.client._backoff.Backoff`: exponential backoff with full jitter, exact waits from a
seeded source."""

from __future__ import annotations

import random

import pytest

from ramster.client._backoff import Backoff


def test_each_wait_is_drawn_below_a_window_that_doubles_up_to_the_cap() -> None:
    draws = random.Random(7)
    backoff = Backoff(0.1, 2.0, random.Random(7).random)
    windows = [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert [backoff.next() for _ in windows] == [w * draws.random() for w in windows]


def test_the_waits_fill_their_windows_rather_than_sit_at_their_tops() -> None:
    backoff = Backoff(1.0, 8.0, iter([0.0, 0.5, 0.999, 0.25]).__next__)
    assert [backoff.next() for _ in range(4)] == [0.0, 1.0, 3.996, 2.0]


def test_reset_starts_the_windows_over() -> None:
    backoff = Backoff(0.1, 2.0, lambda: 0.5)
    assert [backoff.next() for _ in range(3)] == [0.05, 0.1, 0.2]
    backoff.reset()
    assert backoff.next() == 0.05


def test_a_loop_retrying_for_days_stays_at_the_cap() -> None:
    backoff = Backoff(0.1, 2.0, lambda: 0.5)
    for _ in range(10_000):
        backoff.next()
    assert backoff.next() == 1.0


def test_a_base_above_the_cap_is_refused() -> None:
    with pytest.raises(ValueError) as error:
        Backoff(3.0, 2.0)
    assert str(error.value) == "backoff base 3.0 and cap 2.0: expected 0 < base <= cap"
