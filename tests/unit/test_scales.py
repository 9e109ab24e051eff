"""Depth subscription plan from the markets' scale lists: who is subscribed, who lacks the
configured scale (one line each, bounded), who could not be checked, and markets=all."""

from __future__ import annotations

import pytest

from exporter import channels
from exporter.depthscales import DepthScales
from exporter.rest import RestError
from exporter.scales import DepthPlan, depth_markets, describe_scales, plan_depth

FOUR = {0: 0.01, 1: 0.1, 2: 1.0, 3: 10.0}
TWO = {0: 0.01, 1: 0.1}


def test_every_market_has_the_scale():
    plan = plan_depth(["BTC_USDT", "ETH_USDT"], 2, {"BTC_USDT": FOUR, "ETH_USDT": FOUR})
    assert plan == DepthPlan(("BTC_USDT", "ETH_USDT"), (), (), ())


def test_a_market_without_the_scale_is_left_out_with_one_line():
    plan = plan_depth(["BTC_USDT", "SHIB_USDT", "ETH_USDT"], 2,
                      {"BTC_USDT": FOUR, "SHIB_USDT": TWO, "ETH_USDT": FOUR})
    assert plan.subscribe == ("BTC_USDT", "ETH_USDT")
    assert plan.missing == (("SHIB_USDT", (0, 1)),)
    assert plan.unchecked == ()
    assert plan.log_lines == (
        "depth scale 2 does not exist for SHIB_USDT: its scales are 0 (0.01), 1 (0.1); "
        "not subscribing depth for SHIB_USDT",)


def test_an_empty_scale_list():
    plan = plan_depth(["NEW_USDT"], 0, {"NEW_USDT": {}})
    assert plan.missing == (("NEW_USDT", ()),)
    assert plan.log_lines == (
        "depth scale 0 does not exist for NEW_USDT: it lists no scales; "
        "not subscribing depth for NEW_USDT",
        "no market to subscribe depth scale 0 for: depth is not subscribed")


def test_a_market_whose_scales_could_not_be_fetched_is_subscribed_unchecked():
    plan = plan_depth(["BTC_USDT", "ETH_USDT", "TRX_USDT"], 1, {
        "BTC_USDT": RestError("scales", "timeout"),
        "ETH_USDT": FOUR,
    })
    assert plan.subscribe == ("BTC_USDT", "ETH_USDT", "TRX_USDT")
    assert plan.unchecked == ("BTC_USDT", "TRX_USDT")
    assert plan.missing == ()
    assert plan.log_lines == (
        "cannot check the depth scales of BTC_USDT (scales request failed: timeout); "
        "subscribing BTC_USDT:1 unchecked",
        "cannot check the depth scales of TRX_USDT (not fetched); subscribing TRX_USDT:1 "
        "unchecked")


def test_no_market_has_the_scale():
    plan = plan_depth(["BTC_USDT", "ETH_USDT"], 7, {"BTC_USDT": FOUR, "ETH_USDT": TWO})
    assert plan.subscribe == ()
    assert plan.missing == (("BTC_USDT", (0, 1, 2, 3)), ("ETH_USDT", (0, 1)))
    assert plan.log_lines[-1] == "no market to subscribe depth scale 7 for: depth is not subscribed"
    assert len(plan.log_lines) == 3


def test_no_market_at_all():
    assert plan_depth([], 2, {}) == DepthPlan(
        (), (), (), ("no market is known yet: depth is not subscribed",))


def test_order_is_kept_and_duplicates_are_dropped():
    plan = plan_depth(["TRX_USDT", "BTC_USDT", "TRX_USDT"], 0,
                      {"BTC_USDT": FOUR, "TRX_USDT": FOUR})
    assert plan.subscribe == ("TRX_USDT", "BTC_USDT")


def test_log_lines_are_bounded_per_kind_with_a_summary():
    markets = [f"M{number:02d}_USDT" for number in range(30)]
    fetched = {market: (TWO if number % 2 else RestError("scales", "503"))
               for number, market in enumerate(markets)}
    plan = plan_depth(markets, 3, fetched, max_lines=4)
    assert len(plan.missing) == 15 and len(plan.unchecked) == 15
    assert plan.subscribe == plan.unchecked
    assert len(plan.log_lines) == 10
    assert plan.log_lines[4] == "... and 11 more markets lack depth scale 3 (not subscribed)"
    assert plan.log_lines[9] == ("... and 11 more markets' depth scales could not be checked "
                                 "(subscribed unchecked)")
    assert plan.log_lines[0].startswith("depth scale 3 does not exist for M01_USDT")
    assert plan.log_lines[5].startswith("cannot check the depth scales of M00_USDT")


def test_describe_scales_sorts_and_shows_the_steps():
    assert describe_scales({2: 1.0, 0: 1e-08, 1: 0.5}) == "0 (1e-08), 1 (0.5), 2 (1)"
    assert describe_scales({}) == ""


@pytest.mark.parametrize(("configured", "scale", "known", "cap", "expected"), [
    (("BTC_USDT", "ETH_USDT"), 0, {"X_Y"}, 10, ("BTC_USDT", "ETH_USDT")),
    (("BTC_USDT",), 3, set(), 10, ("BTC_USDT",)),
    # markets=all with scale 0: ["all"], nothing checked
    (None, 0, {"BTC_USDT", "ETH_USDT"}, 10, None),
    # markets=all with another scale: the market list, sorted, capped
    (None, 2, {"TRX_USDT", "BTC_USDT", "ETH_USDT"}, 10, ("BTC_USDT", "ETH_USDT", "TRX_USDT")),
    (None, 2, {"TRX_USDT", "BTC_USDT", "ETH_USDT"}, 2, ("BTC_USDT", "ETH_USDT")),
    # the market list could not be fetched: nothing to subscribe yet
    (None, 2, set(), 10, ()),
])
def test_depth_markets(configured, scale, known, cap, expected):
    assert depth_markets(configured, scale, known, cap) == expected


class _Scales:
    """scales_of answers from a table: scales, or the error the fetch ended with."""

    def __init__(self, answers: dict) -> None:
        self.answers = answers
        self.asked: list[list[str]] = []

    def scales_of(self, symbols):
        self.asked.append(list(symbols))
        return {symbol: self.answers[symbol] for symbol in symbols}


def test_depth_scales_keep_successes_and_treat_an_empty_list_as_missing():
    state = channels.new_state(markets=("BTC_USDT", "NEW_USDT", "ETH_USDT"))
    rest = _Scales({"BTC_USDT": {0: 0.01}, "NEW_USDT": {}, "ETH_USDT": OSError("refused")})
    depth = DepthScales(rest, state.markets, configured=("BTC_USDT", "NEW_USDT", "ETH_USDT"),
                        scale=0, max_markets=10)
    assert depth.markets(frozenset()) == ("BTC_USDT", "ETH_USDT")  # ETH: unchecked
    assert state.markets.scale_missing == {"BTC_USDT": 0.0, "NEW_USDT": 1.0}
    rest.answers["ETH_USDT"] = {1: 0.1}
    assert depth.markets(frozenset()) == ("BTC_USDT",)
    assert rest.asked == [["BTC_USDT", "NEW_USDT", "ETH_USDT"], ["ETH_USDT"]]
    assert state.markets.scale_missing == {"BTC_USDT": 0.0, "NEW_USDT": 1.0, "ETH_USDT": 1.0}
