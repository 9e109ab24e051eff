"""The signed REST client against the simulator (and a closed port) on loopback."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from exporter import channels, collectors
from exporter.rest import RestClient, RestError, sign
from exporter.simulator import Simulator, SimulatorConfig
from tests.support import free_port


@pytest.fixture
def sim():
    with Simulator(SimulatorConfig(port=0, autogen=False, markets=["BTC_USDT", "TRX_USDT"])) as s:
        yield s


class Client:
    def __init__(self, base_url: str, api_key: str, user_id: str = "demo-user") -> None:
        self.registry = CollectorRegistry()
        self.waits: list[float] = []
        state = channels.new_state()
        instruments = collectors.register(self.registry, state, version="test", process=False)
        self.rest = RestClient(state.link, instruments.api_request_duration_seconds,
                               api_url=base_url, market_api_url=base_url,
                               scales_api_url=base_url, user_id=user_id, api_key=api_key,
                               timeout=2.0, attempts=3, wait=self.waits.append)

    def requests(self, endpoint: str, code: str) -> float | None:
        return self.registry.get_sample_value("cryptomus_api_requests_total",
                                              {"endpoint": endpoint, "code": code})


def test_sign_is_md5_of_base64_body_and_key():
    assert sign(b"", "key") == "3c6e0b8a9c15224a8228b9a98ca1531d"  # md5("key")
    assert sign(b"{}", "key") == "5d804dfcbf33c7c3141d37b429eb7999"  # md5("e30=" + "key")


def test_token_markets_scales_and_balances(sim):
    client = Client(sim.base_url, sim.config.api_key)
    token = client.rest.token()
    assert len(token) == 64 and int(token, 16) >= 0
    assert client.rest.token() != token
    markets = client.rest.markets()
    assert ("BTC_USDT", "BTC", "USDT") in markets
    assert 0 in client.rest.scales("BTC_USDT")
    sim.account.set_balance("USDT", available="12.5", held="2")
    assert ("USDT", 12.5, 2.0) in client.rest.balances()
    assert client.requests("token", "200") == 2
    assert client.registry.get_sample_value("cryptomus_api_request_duration_seconds_count",
                                            {"endpoint": "markets"}) == 1


def test_open_orders_are_paged(sim):
    sim.account.clear()
    for number in range(150):
        sim.account.add_open_order({
            "id": f"order-{number}", "symbol": "TRX_USDT", "orderType": "limit",
            "direction": "buy" if number % 3 else "sell", "price": "0.2", "quantity": "1",
            "value": "0.2", "filledQuantity": "0", "filledValue": "0", "clientOid": None,
            "createTs": 1750696376})
    client = Client(sim.base_url, sim.config.api_key)
    orders = client.rest.open_orders()
    assert len({order.order_id for order in orders}) == 150
    assert client.requests("orders", "200") == 2


def test_a_wrong_key_is_not_retried(sim):
    client = Client(sim.base_url, "not-the-key")
    with pytest.raises(RestError) as error:
        client.rest.balances()
    assert error.value.code == "401"
    assert client.requests("balance", "401") == 1
    assert client.waits == []
    assert "not-the-key" not in str(error.value)


def test_token_failures_are_not_retried_by_the_client(sim):
    sim.faults.fail_token(2, status=429)
    client = Client(sim.base_url, sim.config.api_key)
    with pytest.raises(RestError) as error:
        client.rest.token()
    assert error.value.code == "429"
    assert client.waits == []  # the supervisor's backoff is the retry
    assert client.requests("token", "429") == 1


def test_network_errors_are_retried_with_growing_backoff():
    client = Client(f"http://127.0.0.1:{free_port()}", "key")
    with pytest.raises(RestError) as error:
        client.rest.markets()
    assert error.value.code == "error"
    assert client.requests("markets", "error") == 3
    assert len(client.waits) == 2
    assert client.waits[0] == 0.5
    assert 0.5 <= client.waits[1] <= 1.0


def test_html_error_pages_are_invalid_responses(sim):
    sim.faults.fail_token(1, status=500)
    client = Client(sim.base_url, sim.config.api_key)
    with pytest.raises(RestError) as error:
        client.rest.token()
    assert error.value.code == "500"
