"""Depth scale lists over real loopback HTTP: the simulator's /api/v2/symbol-scales, a closed
port, and a slow server that shows the concurrency bound; then the depth plan from them."""

from __future__ import annotations

import gevent
import orjson
import pytest
from gevent import pywsgi
from prometheus_client import CollectorRegistry

from exporter import channels, collectors
from exporter.rest import SCALES_CONCURRENCY, RestClient, RestError
from exporter.scales import plan_depth
from exporter.simulator import Simulator, SimulatorConfig
from tests.support import free_port

MARKETS = ["BTC_USDT", "ETH_USDT", "TRX_USDT"]


@pytest.fixture
def sim():
    with Simulator(SimulatorConfig(port=0, autogen=False, markets=MARKETS)) as s:
        yield s


class Client:
    def __init__(self, base_url: str) -> None:
        self.registry = CollectorRegistry()
        self.waits: list[float] = []
        state = channels.new_state()
        instruments = collectors.register(self.registry, state, version="test", process=False)
        self.rest = RestClient(state.link, instruments.api_request_duration_seconds,
                               api_url=base_url, market_api_url=base_url,
                               scales_api_url=base_url, user_id=None, api_key=None,
                               timeout=2.0, attempts=3, wait=self.waits.append)

    def requests(self, code: str) -> float | None:
        return self.registry.get_sample_value("cryptomus_api_requests_total",
                                              {"endpoint": "scales", "code": code})


def test_scales_of_the_simulators_markets_in_the_order_asked(sim):
    client = Client(sim.base_url)
    fetched = client.rest.scales_of(["TRX_USDT", "BTC_USDT", "ETH_USDT", "BTC_USDT"])
    assert list(fetched) == ["TRX_USDT", "BTC_USDT", "ETH_USDT"]
    for scales in fetched.values():
        assert sorted(scales) == [0, 1, 2, 3]
        assert all(step > 0 for step in scales.values())
    assert fetched["BTC_USDT"][1] == pytest.approx(10 * fetched["BTC_USDT"][0])
    assert client.requests("200") == 3


def test_an_unknown_market_is_an_error_not_retried(sim):
    client = Client(sim.base_url)
    fetched = client.rest.scales_of(["BTC_USDT", "NOPE_USDT"])
    assert isinstance(fetched["NOPE_USDT"], RestError)
    assert fetched["NOPE_USDT"].code == "404"
    assert client.requests("404") == 1
    assert client.waits == []


def test_the_plan_against_the_simulator(sim):
    client = Client(sim.base_url)
    markets = [*MARKETS, "NOPE_USDT"]
    fetched = client.rest.scales_of(markets)
    plan = plan_depth(markets, 2, fetched)
    assert plan.subscribe == (*MARKETS, "NOPE_USDT")
    assert plan.unchecked == ("NOPE_USDT",)
    assert plan.log_lines == ("cannot check the depth scales of NOPE_USDT (scales request "
                              "failed: 404); subscribing NOPE_USDT:2 unchecked",)
    plan = plan_depth(MARKETS, 4, fetched)  # the simulator has scales 0..3
    assert plan.subscribe == ()
    assert [market for market, _ in plan.missing] == MARKETS
    assert all(scales == (0, 1, 2, 3) for _, scales in plan.missing)
    assert plan.log_lines[0].startswith(
        "depth scale 4 does not exist for BTC_USDT: its scales are 0 (")
    assert plan.log_lines[-1] == "no market to subscribe depth scale 4 for: depth is not subscribed"


def test_network_errors_are_retried_with_backoff_for_each_market():
    client = Client(f"http://127.0.0.1:{free_port()}")
    fetched = client.rest.scales_of(["BTC_USDT", "ETH_USDT"])
    assert all(isinstance(error, RestError) and error.code == "error"
               for error in fetched.values())
    assert client.requests("error") == 6  # 3 attempts each
    assert sorted(client.waits)[:2] == [0.5, 0.5]  # each market's first retry waits the minimum
    assert len(client.waits) == 4


class SlowScales:
    """A loopback server whose scale list answers after ``delay``; records peak concurrency."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.in_flight = 0
        self.peak = 0
        self.served: list[str] = []
        self.server = pywsgi.WSGIServer(("127.0.0.1", 0), self.app, log=None, error_log=None)

    def app(self, environ, start_response):
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            gevent.sleep(self.delay)
            self.served.append(environ.get("QUERY_STRING", ""))
            body = orjson.dumps({"status": "success", "message": "success",
                                 "data": [{"scale": "0.01", "index": 0}]})
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        finally:
            self.in_flight -= 1

    def __enter__(self) -> SlowScales:
        self.server.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop(timeout=1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"


@pytest.mark.parametrize("concurrency", [1, 3, SCALES_CONCURRENCY])
def test_at_most_concurrency_requests_are_in_flight(concurrency):
    symbols = [f"M{number}_USDT" for number in range(10)]
    with SlowScales(delay=0.1) as server:
        client = Client(server.url)
        fetched = client.rest.scales_of(symbols, concurrency=concurrency)
    assert list(fetched) == symbols
    assert all(scales == {0: 0.01} for scales in fetched.values())
    assert len(server.served) == 10
    assert server.peak == concurrency


def test_a_concurrency_below_one_is_refused():
    with pytest.raises(ValueError):
        Client("http://127.0.0.1:9").rest.scales_of(["BTC_USDT"], concurrency=0)
