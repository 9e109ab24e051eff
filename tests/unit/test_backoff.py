"""Backoff policy: exact delays with an injected rand, caps, reset, validation."""

from __future__ import annotations

import math
import random

import pytest

from exporter.backoff import Backoff


def delays(backoff: Backoff, count: int) -> list[float]:
    return [backoff.next_delay() for _ in range(count)]


def test_rand_one_gives_the_doubling_ceilings_up_to_the_cap():
    backoff = Backoff(1, 120, rand=lambda: 1.0)
    assert delays(backoff, 10) == [1, 2, 4, 8, 16, 32, 64, 120, 120, 120]


def test_rand_zero_always_gives_the_minimum():
    backoff = Backoff(1, 120, rand=lambda: 0.0)
    assert delays(backoff, 12) == [1.0] * 12


def test_rand_half_gives_the_midpoints():
    backoff = Backoff(1, 120, rand=lambda: 0.5)
    assert delays(backoff, 9) == [1, 1.5, 2.5, 4.5, 8.5, 16.5, 32.5, 60.5, 60.5]


def test_custom_factor_and_minimum():
    backoff = Backoff(0.5, 10, factor=3.0, rand=lambda: 1.0)
    assert delays(backoff, 5) == [0.5, 1.5, 4.5, 10, 10]


def test_factor_one_is_a_constant_window():
    backoff = Backoff(2, 8, factor=1.0, rand=lambda: 1.0)
    assert delays(backoff, 4) == [2, 2, 2, 2]


def test_equal_bounds_give_a_fixed_delay():
    backoff = Backoff(5, 5, rand=random.Random(1).random)
    assert delays(backoff, 4) == [5, 5, 5, 5]


def test_attempt_and_ceiling_describe_the_next_delay():
    backoff = Backoff(1, 6, rand=lambda: 1.0)
    assert (backoff.attempt, backoff.ceiling) == (0, 1)
    observed = []
    for _ in range(5):
        ceiling = backoff.ceiling
        assert backoff.next_delay() == ceiling
        observed.append((backoff.attempt, backoff.ceiling))
    assert observed == [(1, 2), (2, 4), (3, 6), (4, 6), (5, 6)]


def test_reset_starts_again_from_the_minimum():
    backoff = Backoff(1, 120, rand=lambda: 1.0)
    delays(backoff, 6)
    assert backoff.attempt == 6
    backoff.reset()
    assert (backoff.attempt, backoff.ceiling) == (0, 1)
    assert delays(backoff, 3) == [1, 2, 4]


def test_real_random_delays_stay_within_each_ceiling():
    rand = random.Random(1234).random
    backoff = Backoff(1, 120, rand=rand)
    for _ in range(200):
        ceiling = backoff.ceiling
        delay = backoff.next_delay()
        assert 1 <= delay <= ceiling <= 120
    # The jitter actually varies (a constant would mean rand was not used).
    assert len(set(delays(backoff, 20))) > 1


def test_rand_outside_unit_interval_is_clamped_to_the_bounds():
    assert delays(Backoff(1, 120, rand=lambda: 7.0), 3) == [1, 2, 4]
    assert delays(Backoff(1, 120, rand=lambda: -3.0), 3) == [1, 1, 1]


def test_many_attempts_do_not_overflow():
    backoff = Backoff(1, 120, rand=lambda: 1.0)
    last = delays(backoff, 5000)[-1]
    assert last == 120
    assert backoff.ceiling == 120
    assert backoff.attempt == 5000


def test_huge_factor_and_tiny_minimum_do_not_overflow():
    backoff = Backoff(1e-300, 1e300, factor=1e300, rand=lambda: 1.0)
    assert delays(backoff, 4) == [1e-300, 1.0, 1e300, 1e300]
    backoff = Backoff(1e-300, 1e300, factor=1.5, rand=lambda: 1.0)
    results = delays(backoff, 3000)
    assert results[-1] == 1e300
    assert all(math.isfinite(delay) for delay in results)
    assert results == sorted(results)


@pytest.mark.parametrize(
    ("minimum", "maximum", "factor"),
    [
        (0, 10, 2),
        (-1, 10, 2),
        (5, 4, 2),
        (1, 10, 0.5),
        (1, 10, 0),
        (math.nan, 10, 2),
        (1, math.nan, 2),
        (1, math.inf, 2),
        (1, 10, math.inf),
        (1, 10, math.nan),
    ],
)
def test_invalid_parameters_are_rejected(minimum, maximum, factor):
    with pytest.raises(ValueError, match="backoff"):
        Backoff(minimum, maximum, factor)


def test_retry_after_lengthens_a_delay_but_never_past_the_maximum():
    backoff = Backoff(1.0, 8.0, rand=lambda: 0.0)
    assert backoff.next_delay(retry_after=3.0) == 3.0
    assert backoff.next_delay(retry_after=0.5) == 1.0
    assert backoff.next_delay(retry_after=600.0) == 8.0
    assert backoff.next_delay(retry_after=None) == 1.0
