"""Fault injection, through the Python API and the loopback control endpoints."""

from __future__ import annotations

from decimal import Decimal

import gevent
import orjson
import pytest
import requests
import websocket

from exporter.simulator.rest import SCALES_PATH

from .conftest import HTTP_TIMEOUT, TOKEN_PATH, apply_levels, get, get_token

WAIT_STEPS = 100  # bounded polling: WAIT_STEPS x 0.05 s


def wait_until(condition) -> None:
    for _ in range(WAIT_STEPS):
        if condition():
            return
        gevent.sleep(0.05)
    raise AssertionError("condition not reached")


def test_drop_connections_closes_tcp_without_a_close_frame(start_sim, connect) -> None:
    sim = start_sim(rate=50.0)
    first, second = connect(sim), connect(sim)
    first.subscribe("ticker")
    assert sim.faults.drop_connections() == 2
    for client in (first, second):
        with pytest.raises(websocket.WebSocketConnectionClosedException):
            for _ in range(10_000):
                opcode, _ = client.recv_frame()
                assert opcode != websocket.ABNF.OPCODE_CLOSE
    wait_until(lambda: sim.connections == 0)
    assert sim.stats.dropped_by_fault == 2
    connect(sim)  # a new token connects again
    assert len(set(sim.tokens_seen)) == 3


def test_go_silent_sends_nothing_and_leaves_pings_unanswered(start_sim, connect) -> None:
    sim = start_sim(rate=100.0)
    client = connect(sim)
    client.subscribe("lastprice")
    client.events(3)
    sim.faults.go_silent(0.5)
    silent_ping = client.send("ping")
    assert sim.faults.silent
    wait_until(lambda: not sim.faults.silent)
    frames = client.drain()
    assert silent_ping not in [frame["id"] for frame in frames]
    assert sim.stats.frames_suppressed >= 1
    assert sim.connections == 1  # requests during the silence kept the connection alive


@pytest.mark.parametrize(
    ("kind", "count", "parses"),
    [("not_json", 2, False), ("truncated", 2, False), ("wrong_types", 9, True),
     ("unknown_method", 2, True), ("huge", 1, True)],
)  # fmt: skip
def test_send_garbage(start_sim, connect, kind: str, count: int, parses: bool) -> None:
    sim = start_sim(autogen=False)
    client = connect(sim)
    assert sim.faults.send_garbage(kind) == count
    for _ in range(count):
        payload = client.ws.recv()
        if parses:
            orjson.loads(payload)
        else:
            with pytest.raises(orjson.JSONDecodeError):
                orjson.loads(payload)
        if kind == "huge":
            assert len(payload) > 2 * 1024 * 1024
    assert sim.stats.garbage_sent[kind] == count
    assert client.request("ping")["method"] == "pong"
    with pytest.raises(ValueError):
        sim.faults.send_garbage("nonsense")


def test_fail_token(start_sim) -> None:
    sim = start_sim(autogen=False)
    sim.faults.fail_token(2, status=500)
    failures = [get(sim, TOKEN_PATH, signed=True) for _ in range(2)]
    assert [r.status_code for r in failures] == [500, 500]
    assert all(r.headers["content-type"].startswith("text/html") for r in failures)
    assert get(sim, TOKEN_PATH, signed=True).status_code == 200
    sim.faults.fail_token(1, status=429)
    limited = get(sim, TOKEN_PATH, signed=True)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
    assert sim.stats.token_failures == 3 and sim.stats.tokens_issued == 1
    with pytest.raises(ValueError):
        sim.faults.fail_token(0)


@pytest.mark.parametrize("mode", ["status", "reset"])
def test_refuse_connections(start_sim, connect, mode: str) -> None:
    sim = start_sim(autogen=False)
    token = get_token(sim)
    sim.faults.refuse_connections(0.4, mode=mode)
    with pytest.raises((websocket.WebSocketException, OSError)) as refused:
        connect(sim, token)
    if mode == "status":
        assert refused.value.status_code == 503
    assert sim.stats.connections_rejected == 1
    wait_until(lambda: not sim.faults.refusing)
    connect(sim, token)  # the refused attempt did not use the token up
    assert sim.connections == 1


def depth_book(frames: list[dict]) -> dict[str, dict[Decimal, Decimal]]:
    book: dict[str, dict[Decimal, Decimal]] = {"asks": {}, "bids": {}}
    for frame in frames:
        apply_levels(book, frame["data"])
    return book


def test_partial_depth_before_reload(start_sim, connect) -> None:
    sim = start_sim(autogen=False)
    client = connect(sim)
    sim.faults.partial_depth_before_reload("ETH_USDT")
    client.subscribe("depth", ["BTC_USDT:0", "ETH_USDT:0"])
    frames = client.drain()
    assert [(f["data"]["symbol"], f["data"]["full_reload"]) for f in frames] == [
        ("BTC_USDT", True),
        ("ETH_USDT", False),
        ("ETH_USDT", True),
    ]
    assert client.request("depth_unsubscribe", ["BTC_USDT:0", "ETH_USDT:0"])["error"] is None
    client.subscribe("depth", ["ETH_USDT:0"])
    assert [f["data"]["full_reload"] for f in client.drain()] == [True]  # one-shot
    with pytest.raises(ValueError):
        sim.faults.partial_depth_before_reload("NOPE_USDT")


def test_crossed_book_then_resync(start_sim, connect) -> None:
    sim = start_sim(autogen=False)
    client = connect(sim)
    client.subscribe("depth", ["BTC_USDT:0"])
    frames = client.drain()
    assert sim.faults.crossed_book("BTC_USDT") == 1
    assert sim.faults.crossed_book("ETH_USDT") == 0  # nobody subscribed
    frames += client.drain()
    crossed = depth_book(frames)
    assert max(crossed["bids"]) >= min(crossed["asks"])
    client.request("depth_unsubscribe", ["BTC_USDT:0"])
    client.subscribe("depth", ["BTC_USDT:0"])
    sound = depth_book(client.drain())
    assert max(sound["bids"]) < min(sound["asks"])


def control(sim, path: str, **params: object) -> requests.Response:
    return requests.post(f"{sim.base_url}/_sim/{path}", params=params, timeout=HTTP_TIMEOUT)


def test_control_endpoints(start_sim, connect) -> None:
    sim = start_sim(autogen=False)
    client = connect(sim)
    client.subscribe("balance")
    response = control(sim, "faults/go_silent", seconds=0.3)
    assert response.status_code == 200 and response.json()["fault"] == "go_silent"
    assert sim.faults.silent
    assert control(sim, "faults/clear").status_code == 200
    assert not sim.faults.silent
    assert control(sim, "faults/send-garbage", kind="truncated").json()["result"] == 2
    assert control(sim, "faults/fail_token", count=1, status=503).status_code == 200
    assert get(sim, TOKEN_PATH, signed=True).status_code == 503
    assert control(sim, "faults/nope").status_code == 400
    assert control(sim, "faults/fail_token", count="many").status_code == 400
    assert control(sim, "faults/crossed_book", market="NOPE").status_code == 400
    assert control(sim, "faults/go_silent").status_code == 400  # seconds is required
    pushed = requests.post(
        f"{sim.base_url}/_sim/push",
        data=orjson.dumps({"channel": "balance", "data": {"info": {"currencyCode": "BTC"}}}),
        timeout=HTTP_TIMEOUT,
    )
    assert pushed.json() == {"status": "ok", "sent": 1}
    stats = requests.get(f"{sim.base_url}/_sim/stats", timeout=HTTP_TIMEOUT).json()
    assert stats["connections"] == 1
    assert stats["garbage_sent"] == {"truncated": 2}
    assert stats["balance_updates_sent"] == {"BTC": 1}
    assert (
        requests.get(f"{sim.base_url}/_sim/faults/clear", timeout=HTTP_TIMEOUT).status_code == 404
    )


def test_control_endpoints_are_loopback_only(start_sim) -> None:
    sim = start_sim(autogen=False)
    refused = sim.control.route("POST", "/_sim/faults/drop_connections", {}, b"", "192.0.2.7")
    assert refused.status == 403
    allowed = sim.control.route("POST", "/_sim/faults/drop_connections", {}, b"", "::1")
    assert allowed.status == 200


def test_scale_lists_fail_for_chosen_markets_until_restored(start_sim) -> None:
    sim = start_sim(autogen=False)

    def scales_status(symbol: str) -> int:
        return get(sim, SCALES_PATH, params={"symbol": symbol}).status_code

    sim.fail_scale_lists(["BTC_USDT"])
    assert (scales_status("BTC_USDT"), scales_status("ETH_USDT")) == (404, 200)
    sim.restore_scale_lists()
    assert scales_status("BTC_USDT") == 200
    assert control(sim, "faults/fail_scales", market="ETH_USDT,TRX_USDT", status=503).ok
    assert [scales_status(s) for s in ("BTC_USDT", "ETH_USDT", "TRX_USDT")] == [200, 503, 503]
    assert control(sim, "faults/restore_scales").ok
    assert scales_status("ETH_USDT") == 200
    assert control(sim, "faults/fail_scales", market="ETH_USDT", status=200).status_code == 400
    assert control(sim, "faults/fail_scales", market="").status_code == 400
    sim.fail_scale_lists("TRX_USDT")
    assert control(sim, "faults/clear").ok
    assert scales_status("TRX_USDT") == 200


def test_ack_failure_switched_on_a_running_simulator(start_sim, connect) -> None:
    sim = start_sim(autogen=False, ack_failure_channels=("trade",))
    client = connect(sim)
    assert client.request("trade_subscribe", ["all"])["data"] == {"status": "failure"}
    sim.set_ack_failure(["ticker"])
    assert client.request("trade_subscribe", ["all"])["data"] == {"status": "success"}
    assert client.request("ticker_subscribe", ["all"])["data"] == {"status": "failure"}
    assert control(sim, "faults/fail_acks", channels="lastprice").ok
    assert client.request("ticker_subscribe", ["all"])["data"] == {"status": "success"}
    assert client.request("lastprice_subscribe", ["all"])["data"] == {"status": "failure"}
    assert control(sim, "faults/fail_acks", channels="candles").status_code == 400
    sim.set_ack_failure(())
    assert client.request("lastprice_subscribe", ["all"])["data"] == {"status": "success"}
    assert sim.stats.ack_failures_sent == {"trade": 1, "ticker": 1, "lastprice": 1}
