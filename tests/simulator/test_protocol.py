"""The simulator driven like the exporter drives Cryptomus: real loopback sockets,
websocket-client and requests."""

from __future__ import annotations

from decimal import Decimal

import gevent
import orjson
import pytest
import requests
import websocket

from exporter.simulator import Simulator, SimulatorConfig

from .conftest import (
    CHANNELS,
    HTTP_TIMEOUT,
    PRIVATE,
    TOKEN_PATH,
    auth_headers,
    get,
    get_token,
    sign,
)

CLOSE = websocket.ABNF.OPCODE_CLOSE
ORDERS_PATH = "/v2/user-api/exchange/orders"
BALANCE_PATH = "/v2/user-api/exchange/account/balance"


def close_code(data: bytes) -> int:
    return int.from_bytes(data[:2], "big")


# --- token ---------------------------------------------------------------------------


def test_token_needs_the_user_id_and_a_valid_sign(start_sim) -> None:
    sim = start_sim(autogen=False)
    good = get(sim, TOKEN_PATH, signed=True)
    assert good.status_code == 200
    assert len(good.json()["token"]) == 64
    bad_sign = get(sim, TOKEN_PATH, headers={"userId": "demo-user", "sign": sign("other-key")})
    assert bad_sign.status_code == 401
    assert bad_sign.json()["code"] == 401 and bad_sign.json()["message"]
    assert "demo-api-key" not in bad_sign.text
    unknown_user = get(sim, TOKEN_PATH, headers={"userId": "nobody", "sign": sign("demo-api-key")})
    assert unknown_user.status_code == 404
    assert get(sim, TOKEN_PATH).status_code == 404
    assert sim.stats.tokens_issued == 1
    assert sim.stats.token_failures == 3


def test_sign_covers_the_body_and_custom_credentials(start_sim) -> None:
    sim = start_sim(autogen=False, user_id="u-42", api_key="s3cret")
    headers = {"userId": "u-42", "sign": sign("s3cret", b'{"a":1}')}
    # the sign is over base64(body) + key: a signed body is accepted on a GET too
    assert get(sim, TOKEN_PATH, headers=headers, data=b'{"a":1}').status_code == 200
    assert get(sim, TOKEN_PATH, headers=headers).status_code == 401
    headers["sign"] = sign("s3cret")
    assert get(sim, TOKEN_PATH, headers=headers).status_code == 200


def test_a_token_connects_once(start_sim, connect) -> None:
    sim = start_sim(autogen=False)
    token = get_token(sim)
    connect(sim, token)
    with pytest.raises(websocket.WebSocketBadStatusException) as reused:
        connect(sim, token)
    assert reused.value.status_code == 401
    with pytest.raises(websocket.WebSocketBadStatusException) as unknown:
        connect(sim, "0" * 64)
    assert unknown.value.status_code == 401
    second = connect(sim)
    assert second.token != token
    assert sim.tokens_seen == [token, second.token]
    assert sim.stats.connections_rejected == 2
    assert sim.connections == 2


def test_an_expired_token_is_rejected(start_sim, connect) -> None:
    sim = start_sim(autogen=False, token_ttl=0.2)
    token = get_token(sim)
    gevent.sleep(0.4)
    with pytest.raises(websocket.WebSocketBadStatusException) as expired:
        connect(sim, token)
    assert expired.value.status_code == 401
    connect(sim)  # a fresh one works


# --- requests and acks -----------------------------------------------------------------


def test_ping_pong_and_websocket_level_ping(start_sim, connect) -> None:
    sim = start_sim(autogen=False)
    client = connect(sim)
    client.ws.send('{"id": 0, "method": "ping", "params": []}')
    assert client.recv() == {"id": 0, "method": "pong", "data": None, "error": None}
    assert client.request("ping") == {
        "id": client.next_id,
        "method": "pong",
        "data": None,
        "error": None,
    }
    client.ws.ping(b"hello")
    opcode, data = client.recv_frame()
    assert (opcode, data) == (websocket.ABNF.OPCODE_PONG, b"hello")
    assert sim.stats.pings == 2


def test_every_channel_subscribes_once_per_connection(start_sim, connect) -> None:
    sim = start_sim(autogen=False)
    client = connect(sim)
    for channel in CHANNELS:
        ack = client.request(f"{channel}_subscribe", ["all"])
        assert ack["data"] == {"status": "success"} and ack["error"] is None
        assert ("method" in ack) == (channel != "deal")
    client.skipped.clear()  # the depth reloads
    for channel in CHANNELS:
        again = client.request(
            f"{channel}_subscribe", ["BTC_USDT:0" if channel == "depth" else "BTC_USDT"]
        )
        assert again["data"] is None
        assert again["error"]["code"] == 2
        assert again["method"] == f"{channel}_subscribe"
    assert sim.stats.duplicate_subscribes == len(CHANNELS)
    assert sim.stats.subscribe_requests == dict.fromkeys(CHANNELS, 2)


def test_unsubscribe_acks_omit_method_and_allow_subscribing_again(start_sim, connect) -> None:
    sim = start_sim(autogen=False)
    client = connect(sim)
    client.subscribe("trade", ["BTC_USDT", "ETH_USDT"])
    assert client.request("trade_unsubscribe", ["BTC_USDT"]) == {
        "id": client.next_id,
        "data": {"status": "success"},
        "error": None,
    }
    # still subscribed to ETH_USDT, so subscribing again is rejected
    assert client.request("trade_subscribe", ["BTC_USDT"])["error"]["code"] == 2
    assert client.request("trade_unsubscribe", ["ETH_USDT"])["error"] is None
    client.subscribe("trade", ["BTC_USDT"])
    for channel in PRIVATE:
        client.subscribe(channel, ["all"])
        ack = client.request(f"{channel}_unsubscribe", [])
        assert "method" not in ack and ack["error"] is None
        client.subscribe(channel, ["all"])
    public_empty = client.request("ticker_unsubscribe", [])
    assert public_empty["error"]["code"] == 1


@pytest.mark.parametrize(
    ("request_text", "code"),
    [
        ("[1, 2]", 1),
        ('{"id": 5, "method": "ping"}', 1),
        ('{"id": "5", "method": "ping", "params": []}', 1),
        ('{"id": 5, "method": 3, "params": []}', 1),
        ('{"id": 5, "method": "trade_subscribe", "params": [7]}', 1),
        ('{"id": 5, "method": "trade_subscribe", "params": []}', 1),
        ('{"id": 5, "method": "candles_subscribe", "params": ["all"]}', 2),
        ('{"id": 5, "method": "hello", "params": []}', 2),
        ('{"id": 5, "method": "trade_subscribe", "params": ["NOPE_USDT"]}', 2),
        ('{"id": 5, "method": "depth_subscribe", "params": ["BTC_USDT"]}', 2),
        ('{"id": 5, "method": "depth_subscribe", "params": ["BTC_USDT:9"]}', 2),
        ('{"id": 5, "method": "balance_subscribe", "params": ["XYZ"]}', 2),
    ],
)
def test_bad_requests_get_error_codes_and_keep_the_connection(
    start_sim, connect, request_text: str, code: int
) -> None:
    sim = start_sim(autogen=False)
    client = connect(sim)
    client.ws.send(request_text)
    response = client.recv()
    assert response["data"] is None
    assert response["error"]["code"] == code
    assert isinstance(response["error"]["message"], str)
    assert client.request("ping")["method"] == "pong"


def test_invalid_json_closes_the_connection(start_sim, connect) -> None:
    sim = start_sim(autogen=False)
    client = connect(sim)
    client.ws.send('{"id": 1, "method": "ping", ')
    opcode, data = client.recv_frame()
    assert opcode == CLOSE and close_code(data) == 1003
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        client.ws.recv()
    assert sim.stats.invalid_json_closes == 1


def test_idle_clients_are_closed_and_pinging_ones_are_not(start_sim, connect) -> None:
    sim = start_sim(idle_timeout=0.5, rate=50.0)
    idle, pinging = connect(sim), connect(sim)
    idle.subscribe("lastprice")  # server pushes do not count as activity
    received_close = None
    for _ in range(30):  # bounded: about 3 s
        gevent.sleep(0.1)
        assert pinging.request("ping")["method"] == "pong"
        if sim.stats.idle_closes:
            break
    for _ in range(10_000):
        opcode, data = idle.recv_frame()
        if opcode == CLOSE:
            received_close = close_code(data)
            break
    assert received_close == 1000
    for _ in range(8):  # the pinging client outlives several idle periods
        gevent.sleep(0.15)
        assert pinging.request("ping")["method"] == "pong"
    assert sim.stats.idle_closes == 1
    assert sim.connections == 1


# --- market data -------------------------------------------------------------------------


def test_all_and_market_lists_select_what_is_sent(start_sim, connect) -> None:
    sim = start_sim(markets=4)
    everything, btc_only = connect(sim), connect(sim)
    sim.pause()
    for channel in ("lastprice", "ticker", "trade"):
        everything.subscribe(channel, ["all"])
        btc_only.subscribe(channel, ["BTC_USDT"])
    sim.resume()
    seen = {(f["method"], f["data"]["symbol"]) for f in everything.events(3000)}
    assert {symbol for _, symbol in seen} == set(sim.markets)
    assert {method for method, _ in seen} == {"lastprice_update", "ticker_update", "trade_update"}
    assert {f["data"]["symbol"] for f in btc_only.events(300)} == {"BTC_USDT"}


def apply_depth(book: dict[str, dict[Decimal, Decimal]], data: dict) -> None:
    if data["full_reload"]:
        book["asks"], book["bids"] = {}, {}
    for side in ("asks", "bids"):
        for price, quantity in data[side]:
            if quantity == "0":
                assert Decimal(price) in book[side], "removal of a level that does not exist"
                del book[side][Decimal(price)]
            else:
                assert Decimal(quantity) > 0
                book[side][Decimal(price)] = Decimal(quantity)


@pytest.mark.parametrize("scale_index", [0, 2])
def test_depth_reload_then_deltas_keep_a_sound_book(start_sim, connect, scale_index: int) -> None:
    sim = start_sim(markets=3, depth_levels=20)
    client = connect(sim)
    params = ["all"] if scale_index == 0 else [f"{s}:{scale_index}" for s in sim.markets]
    sim.pause()
    client.subscribe("depth", params)
    client.subscribe("trade", ["all"])
    books: dict[str, dict] = {}
    for frame in client.skipped:
        assert frame["data"]["full_reload"] is True
        books[frame["data"]["symbol"]] = {}
        apply_depth(books[frame["data"]["symbol"]], frame["data"])
    assert set(books) == set(sim.markets)
    sim.resume()
    removals = trades_checked = 0
    for frame in client.events(3000):
        data = frame["data"]
        book = books[data["symbol"]]
        if frame["method"] == "trade_update":
            # takers trade at the book's own prices, best level first
            first = data["trades"][0]
            side = "asks" if first["direction"] == "buy" else "bids"
            best = min(book[side]) if side == "asks" else max(book[side])
            if scale_index == 0:
                assert Decimal(str(first["price"])) == best
            trades_checked += 1
            continue
        assert data["full_reload"] is False and data["scale_index"] == scale_index
        removals += sum(q == "0" for _, q in data["asks"] + data["bids"])
        apply_depth(book, data)
        assert max(book["bids"]) < min(book["asks"]), "crossed book"
        assert len(book["bids"]) <= 20 and len(book["asks"]) <= 20
    assert removals and trades_checked
    # the book built from deltas equals a fresh full reload
    sim.pause()
    client.drain()
    assert client.request("depth_unsubscribe", params)["error"] is None
    client.skipped.clear()
    client.subscribe("depth", params)
    client.drain()
    reloads = {
        f["data"]["symbol"]: f["data"] for f in client.skipped if f["method"] == "depth_update"
    }
    for symbol, data in reloads.items():
        fresh: dict = {}
        apply_depth(fresh, data)
        assert fresh == books[symbol]


def test_ticker_statistics_are_consistent(start_sim, connect) -> None:
    sim = start_sim()
    client = connect(sim)
    client.subscribe("ticker")
    for frame in client.events(200):
        data = frame["data"]
        low, high = Decimal(data["low"]), Decimal(data["high"])
        assert low <= Decimal(data["price"]) <= high
        assert low <= Decimal(data["open"]) <= high
        assert Decimal(data["volume"]) > 0 and Decimal(data["quote_volume"]) > 0
        change = (Decimal(data["price"]) - Decimal(data["open"])) / Decimal(data["open"]) * 100
        assert abs(change - Decimal(data["price_change"])) <= Decimal("0.005")


# --- account -----------------------------------------------------------------------------


def test_private_stream_and_rest_agree(start_sim, connect) -> None:
    sim = start_sim(seed=5)
    start_balances = {b["ticker"]: b for b in get(sim, BALANCE_PATH, signed=True).json()["result"]}
    client = connect(sim)
    sim.pause()
    for channel in PRIVATE:
        client.subscribe(channel)
    sim.resume()
    frames = client.events(600)
    sim.pause()
    frames += client.drain()
    available = {ticker: Decimal(b["available"]) for ticker, b in start_balances.items()}
    open_ids: dict[str, dict] = {}
    roles = set()
    for frame in frames:
        data = frame["data"]
        info = data["info"]
        if frame["method"] == "balance_update":
            old, new = Decimal(info["oldBalance"]), Decimal(info["newBalance"])
            assert old == available[info["currencyCode"]]
            assert abs(new - old) == Decimal(info["amount"])
            available[info["currencyCode"]] = new
        elif frame["method"] == "order_update":
            if data["type"] == "finished":
                open_ids.pop(info["id"])
                if info["state"] == "completed":
                    assert info["filledQuantity"] == info["quantity"]
            else:  # REST shows the order as the stream did, without the event's updateTs
                open_ids[info["id"]] = {k: v for k, v in info.items() if k != "updateTs"}
        else:
            roles.add(info["tradeRole"])
            price, quantity = Decimal(info["filledPrice"]), Decimal(info["filledQuantity"])
            assert abs(price * quantity - Decimal(info["filledValue"])) <= Decimal("0.00000001")
            assert Decimal(info["fee"]) > 0
    assert roles == {"maker", "taker"}
    rest_balances = get(sim, BALANCE_PATH, signed=True).json()["result"]
    assert {b["ticker"]: Decimal(b["available"]) for b in rest_balances} == available
    rest_orders = get(sim, ORDERS_PATH, signed=True, params={"limit": 100}).json()["result"]
    assert {o["id"]: o for o in rest_orders} == open_ids
    held = {b["ticker"]: Decimal(b["held"]) for b in rest_balances}
    assert all(value >= 0 for value in held.values())
    assert any(value > 0 for value in held.values()) == bool(open_ids)


def test_rest_orders_page_with_limit_and_offset(start_sim) -> None:
    sim = start_sim(autogen=False)
    sim.account.clear()
    for number in range(5):
        sim.account.add_open_order(
            {"id": f"order-{number}", "symbol": "BTC_USDT", "direction": "buy"}
        )
    pages = [
        [
            o["id"]
            for o in get(
                sim, ORDERS_PATH, signed=True, params={"limit": 2, "offset": offset}
            ).json()["result"]
        ]
        for offset in (0, 2, 4, 6)
    ]
    assert pages == [["order-0", "order-1"], ["order-2", "order-3"], ["order-4"], []]
    assert sim.account.remove_open_order("order-1") and not sim.account.remove_open_order("order-1")
    assert len(get(sim, ORDERS_PATH, signed=True).json()["result"]) == 4
    for bad in ({"limit": 0}, {"limit": 101}, {"limit": "x"}, {"limit": 5, "offset": -1}):
        response = get(sim, ORDERS_PATH, signed=True, params=bad)
        assert response.status_code == 400, bad
        assert response.json()["message"]
    assert get(sim, ORDERS_PATH).status_code == 404  # unsigned


def test_rest_balances_follow_the_account_api_over_keep_alive(start_sim) -> None:
    sim = start_sim(autogen=False)
    sim.account.clear()
    sim.account.set_balance("USDT", available="100.5", held="1.5")
    with requests.Session() as session:  # one kept-alive connection for every call
        session.headers.update(auth_headers(sim))
        url = sim.base_url + BALANCE_PATH
        assert session.get(url, timeout=HTTP_TIMEOUT).json() == {
            "result": [{"ticker": "USDT", "available": "100.5", "held": "1.5"}]
        }
        sim.account.set_balance("BTC", available="0.25")
        assert session.get(url, timeout=HTTP_TIMEOUT).json()["result"][1] == {
            "ticker": "BTC",
            "available": "0.25",
            "held": "0",
        }
        assert session.get(sim.base_url + TOKEN_PATH, timeout=HTTP_TIMEOUT).status_code == 200
        sim.stop()  # does not wait for the idle kept-alive connection


def test_market_list_and_scales(start_sim) -> None:
    sim = start_sim(autogen=False, markets=["BTC_USDT", "FOO_BAR"])
    markets = get(sim, "/v1/exchange/market").json()["result"]
    assert [(m["symbol"], m["baseCurrency"], m["quoteCurrency"]) for m in markets] == [
        ("BTC_USDT", "BTC", "USDT"),
        ("FOO_BAR", "FOO", "BAR"),
    ]
    scales = get(sim, "/api/v2/symbol-scales", params={"symbol": "BTC_USDT"}).json()["data"]
    assert scales[0] == {"scale": "0.01", "index": 0}
    assert [Decimal(s["scale"]) for s in scales] == sorted(Decimal(s["scale"]) for s in scales)
    unknown = get(sim, "/api/v2/symbol-scales", params={"symbol": "NOPE_USDT"})
    assert unknown.status_code == 404 and unknown.json()["status"] == "error"
    assert get(sim, "/api/v2/symbol-scales").status_code == 400
    assert get(sim, "/no/such/path").status_code == 404


def test_market_count_defaults_and_limits() -> None:
    sim = Simulator(SimulatorConfig(markets=1000, depth_levels=5))
    assert len(set(sim.markets)) == 1000
    assert sim.markets[:3] == ["BTC_USDT", "ETH_USDT", "TRX_USDT"]
    for bad in ({"markets": 0}, {"markets": 1001}, {"markets": ["btc-usdt"]}, {"depth_levels": 201},
                {"rate": -1}, {"idle_timeout": 0}, {"markets": ["A_B", "A_B"]}):  # fmt: skip
        with pytest.raises(ValueError):
            SimulatorConfig(**bad)
    assert "demo-api-key" not in repr(SimulatorConfig())


# --- test hooks ----------------------------------------------------------------------------


def test_push_sends_exact_frames_with_the_id_rules(start_sim, connect) -> None:
    sim = start_sim(autogen=False)
    subscribed, other = connect(sim), connect(sim)
    subscribed.subscribe("lastprice", ["BTC_USDT"])
    subscribed.subscribe("balance")
    other.subscribe("trade")
    data = {"symbol": "ETH_USDT", "timestamp": 1750953362, "price": "107152.55"}
    assert sim.push("lastprice", data) == 1  # every subscriber of the channel, whatever its markets
    assert subscribed.recv() == {"id": 0, "method": "lastprice_update", "data": data, "error": None}
    balance = {"info": {"currencyCode": "USDT", "newBalance": "1"}}
    assert sim.push("balance", balance) == 1
    assert subscribed.recv() == {
        "id": "4",
        "method": "balance_update",
        "data": balance,
        "error": None,
    }
    assert sim.push("order", {"x": 1}) == 0
    assert sim.push_raw(b"not json at all") == 2
    assert subscribed.ws.recv() == "not json at all"
    assert other.ws.recv() == "not json at all"
    with pytest.raises(ValueError):
        sim.push("candles", {})
    assert sim.stats.raw_frames_sent == 2
    assert sim.stats.balance_updates_sent == {"USDT": 1}


def test_same_seed_same_frames(start_sim, connect) -> None:
    def first_frames(seed: int) -> list[bytes]:
        sim = start_sim(seed=seed, epoch=1750000000, markets=5)
        client = connect(sim)
        client.ws.send(orjson.dumps({"id": 1, "method": "depth_subscribe", "params": ["all"]}))
        frames = [client.ws.recv() for _ in range(400)]
        sim.stop()
        return frames

    first, second, other = first_frames(3), first_frames(3), first_frames(4)
    assert first == second
    assert first != other


def test_blast_writes_every_frame_in_order(start_sim, connect) -> None:
    sim = start_sim(autogen=False)
    client = connect(sim)
    client.subscribe("lastprice")
    frames = [
        orjson.dumps(
            {
                "id": 0,
                "method": "lastprice_update",
                "data": {"symbol": "BTC_USDT", "n": n},
                "error": None,
            }
        )
        for n in range(3)
    ]
    result = gevent.spawn(sim.blast, frames, 2000)
    received = [client.recv()["data"]["n"] for _ in range(6000)]
    assert result.get(timeout=5) == 6000
    assert received == [0, 1, 2] * 2000
    assert sim.stats.blast_frames_sent == 6000
    assert sim.stats.sent_by_method["lastprice_update"] == 6000


def test_stop_closes_connections_and_is_idempotent(start_sim, connect) -> None:
    sim = start_sim(autogen=False)
    client = connect(sim)
    sim.stop()
    opcode, data = client.recv_frame()
    assert opcode == CLOSE and close_code(data) == 1001
    sim.stop()
    with Simulator(SimulatorConfig(autogen=False)) as again:
        assert again.port > 0 and again.base_url.endswith(str(again.port))
        assert again.ws_url == f"ws://127.0.0.1:{again.port}/ws"
