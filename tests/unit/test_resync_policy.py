"""Order book resync policy: exact delays for a feed that keeps breaking one market's book,
the cap, the healthy reset, the channel-wide minimum interval, and the gauge's view."""

from __future__ import annotations

import math

import pytest

from exporter.backoff import (
    RESYNC_BACKOFF_CAP,
    RESYNC_BACKOFF_SEED,
    RESYNC_HEALTHY_AFTER,
    ResyncPolicy,
)


def storm(policy: ResyncPolicy, market: str, count: int, start: float = 1000.0,
          after: float = 0.5) -> list[float]:
    """The book breaks ``after`` seconds after every resync: the delays handed out."""
    now, delays = start, []
    for _ in range(count):
        delay = policy.next_delay(market, now)
        delays.append(delay)
        now += delay + after
    return delays


def gaps(delays: list[float], after: float = 0.5) -> list[float]:
    """Seconds between consecutive resyncs, from the delays ``storm`` handed out."""
    return [delay + after for delay in delays[1:]]


def test_the_contract_constants():
    assert (RESYNC_BACKOFF_CAP, RESYNC_BACKOFF_SEED, RESYNC_HEALTHY_AFTER) == (300, 1, 60)


def test_a_storm_doubles_the_gap_from_the_minimum_interval_up_to_the_cap():
    delays = storm(ResyncPolicy(5), "BTC_USDT", 11)
    assert delays == [0, 4.5, 9.5, 19.5, 39.5, 79.5, 159.5, 299.5, 299.5, 299.5, 299.5]
    assert gaps(delays) == [5, 10, 20, 40, 80, 160, 300, 300, 300, 300]


def test_resyncs_per_hour_in_a_storm_are_bounded_by_the_cap():
    policy, now, resyncs = ResyncPolicy(5), 0.0, 0
    while now < 3 * 3600:
        now += policy.next_delay("BTC_USDT", now)
        resyncs += 1
        now += 0.01  # the reloaded book is broken again at once
    # 7 resyncs on the way up (0, 5, 15, ..., 315 s), then one per 300 s.
    assert resyncs == 7 + math.ceil((3 * 3600 - 315) / 300)


def test_a_zero_minimum_interval_still_backs_off_from_the_seed():
    assert gaps(storm(ResyncPolicy(0), "BTC_USDT", 8)) == [0.5, 1, 2, 4, 8, 16, 32]


def test_a_small_minimum_interval_doubles_from_the_seed():
    delays = storm(ResyncPolicy(0.25), "BTC_USDT", 6, after=0.125)
    assert gaps(delays, after=0.125) == [0.25, 1, 2, 4, 8]


def test_a_minimum_interval_above_the_cap_raises_the_cap():
    policy = ResyncPolicy(600)
    assert policy.cap == 600
    assert gaps(storm(policy, "BTC_USDT", 4)) == [600, 600, 600]


def test_a_custom_cap():
    assert gaps(storm(ResyncPolicy(5, cap=12), "BTC_USDT", 5)) == [5, 10, 12, 12]


def test_asking_again_before_the_resync_returns_the_rest_of_the_same_wait():
    policy = ResyncPolicy(5)
    assert policy.next_delay("BTC_USDT", 100.0) == 0
    assert policy.next_delay("BTC_USDT", 100.5) == 4.5
    # More broken frames before the resync: the same resync, no further doubling.
    assert policy.next_delay("BTC_USDT", 101.0) == 4.0
    assert policy.next_delay("BTC_USDT", 104.0) == 1.0
    assert policy.backoff("BTC_USDT", 104.0) == 10
    assert policy.next_delay("BTC_USDT", 105.5) == 9.5  # the repeat after the one at 105


def test_a_book_healthy_for_a_minute_after_its_resync_starts_afresh():
    policy = ResyncPolicy(5)
    delays = storm(policy, "BTC_USDT", 5)  # resyncs at 1000, 1005, 1015, 1035, 1075
    assert policy.backoff("BTC_USDT", 1075.0) == 80
    policy.healthy("BTC_USDT", 1075.0 + 59.9)  # not yet a minute
    assert policy.backoff("BTC_USDT", 1075.0 + 59.9) == 80
    assert policy.next_delay("BTC_USDT", 1075.0 + 59.9) == pytest.approx(80 - 59.9)
    # The resync at 1155; healthy until 1215: the next breakage is resynced at once.
    policy.healthy("BTC_USDT", 1215.0)
    assert policy.backoff("BTC_USDT", 1215.0) == 0
    assert policy.backoffs(1215.0) == {}
    assert policy.next_delay("BTC_USDT", 1300.0) == 0
    assert gaps(storm(policy, "BTC_USDT", 4, start=1300.5)) == [10, 20, 40]
    assert delays[0] == 0


def test_a_breakage_long_after_the_last_resync_is_not_a_repeat_even_unreported():
    """healthy() is not required: time alone ends an episode."""
    policy = ResyncPolicy(5)
    storm(policy, "BTC_USDT", 6)  # last resync at 1155, next step 160
    assert policy.next_delay("BTC_USDT", 1155.0 + 60.0) == 0
    assert policy.backoff("BTC_USDT", 1215.0) == 5


def test_markets_back_off_independently_but_the_channel_keeps_its_minimum_interval():
    policy = ResyncPolicy(5)
    storm(policy, "BTC_USDT", 5)  # BTC resyncs at 1000, 1005, 1015, 1035, 1075
    # ETH breaks for the first time at 1076: it is not backed off by BTC's storm, only
    # kept the minimum interval after the channel's last resync (1075).
    assert policy.next_delay("ETH_USDT", 1076.0) == 4
    assert policy.backoff("ETH_USDT", 1076.0) == 5
    assert policy.backoff("BTC_USDT", 1076.0) == 80
    # A first breakage long after any resync is immediate.
    assert policy.next_delay("TRX_USDT", 2000.0) == 0


def test_the_first_resync_waits_the_minimum_interval_after_the_channels_last():
    policy = ResyncPolicy(5)
    assert policy.next_delay("BTC_USDT", 10.0) == 0
    assert policy.next_delay("ETH_USDT", 11.0) == 4
    assert policy.next_delay("TRX_USDT", 12.0) == 8  # 5 s after ETH's, at 16


def test_the_gauge_view_is_a_copy_of_markets_in_a_backoff():
    policy = ResyncPolicy(5)
    assert policy.backoffs(0.0) == {}
    assert policy.backoff("BTC_USDT", 0.0) == 0
    storm(policy, "BTC_USDT", 3, start=0.0)  # resyncs at 0, 5, 15
    assert policy.backoffs(74.9) == {"BTC_USDT": 20}
    policy.next_delay("ETH_USDT", 100.0)
    view = policy.backoffs(100.0)
    assert view == {"ETH_USDT": 5}  # BTC's episode ended 60 s after its resync at 15
    view["ETH_USDT"] = 999
    assert policy.backoff("ETH_USDT", 100.0) == 5


def test_a_zero_minimum_interval_shows_no_backoff_after_one_resync():
    policy = ResyncPolicy(0)
    assert policy.next_delay("BTC_USDT", 0.0) == 0
    assert policy.backoffs(0.0) == {}
    assert policy.next_delay("BTC_USDT", 0.5) == 0
    assert policy.backoffs(0.5) == {"BTC_USDT": 1}


@pytest.mark.parametrize("kwargs", [
    {"min_interval": -1}, {"min_interval": math.nan}, {"min_interval": math.inf},
    {"min_interval": 5, "cap": -1}, {"min_interval": 5, "healthy_after": math.inf},
    {"min_interval": 5, "seed": -0.5},
])
def test_bad_parameters_are_refused(kwargs):
    with pytest.raises(ValueError):
        ResyncPolicy(**kwargs)
