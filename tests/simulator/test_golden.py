"""The simulator's frames and REST bodies against the spec's examples
(tests/fixtures/golden_frames.json): same keys, same JSON type per field, decimal
strings where the spec has them, and the id rules."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from exporter.simulator import Simulator, SimulatorConfig

from .conftest import CHANNELS, PRIVATE, PUBLIC, TOKEN_PATH, Client, get, golden

GOLDEN = golden()
DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")
# Fields whose type the spec leaves open ("string or null").
ALTERNATIVE_TYPES = {"clientOid": {"null", "str"}}
COLLECT_LIMIT = 200_000


def json_type(value: object) -> str:
    if value is None:
        return "null"
    for kind, name in (
        (bool, "bool"),
        (int, "int"),
        (float, "float"),
        (str, "str"),
        (list, "list"),
    ):
        if isinstance(value, kind):
            return name
    return "object"


def assert_same_shape(actual: object, expected: object, path: str = "$") -> None:
    actual_type, expected_type = json_type(actual), json_type(expected)
    field = path.rsplit(".", 1)[-1]
    allowed = ALTERNATIVE_TYPES.get(field, ())
    if actual_type in allowed and actual_type != expected_type:
        return
    assert actual_type == expected_type, f"{path}: {actual_type} where the spec has {expected_type}"
    if expected_type == "str" and DECIMAL.match(expected):  # type: ignore[arg-type]
        assert DECIMAL.match(actual), f"{path}: {actual!r} is not a decimal string"  # type: ignore[arg-type]
    elif expected_type == "object":
        assert set(actual) == set(expected), f"{path}: keys differ by {set(actual) ^ set(expected)}"  # type: ignore[arg-type]
        for key, value in expected.items():  # type: ignore[union-attr]
            assert_same_shape(actual[key], value, f"{path}.{key}")  # type: ignore[index]
    elif expected_type == "list" and expected:
        for index, item in enumerate(actual):  # type: ignore[arg-type]
            assert_same_shape(item, expected[0], f"{path}[{index}]")  # type: ignore[index]


def kind_of(frame: dict) -> str:
    method = frame.get("method", "")
    if method == "order_update":
        return f"order_update_{frame['data']['type']}"
    if method == "depth_update":
        return "depth_reload" if frame["data"]["full_reload"] else "depth_update"
    return method


WANTED = {
    "lastprice_update", "ticker_update", "depth_update", "depth_reload", "trade_update",
    "order_update_created", "order_update_updated", "order_update_finished",
    "balance_update", "deal_update",
}  # fmt: skip


@pytest.fixture(scope="module")
def session() -> Iterator[tuple[Simulator, Client, dict[str, list[dict]], dict[str, dict]]]:
    """One simulator running flat out, one client subscribed to everything, and
    the frames it received grouped by kind (until every kind was seen)."""
    sim = Simulator(SimulatorConfig(seed=11, rate=0.0, markets=3)).start()
    client = Client(sim)
    sim.pause()
    acks = {channel: client.request(f"{channel}_subscribe", ["all"]) for channel in CHANNELS}
    sim.resume()
    by_kind: dict[str, list[dict]] = {}
    for frame in client.skipped:
        by_kind.setdefault(kind_of(frame), []).append(frame)
    roles, finish_states = set(), set()
    for _ in range(COLLECT_LIMIT):
        frame = client.recv()
        by_kind.setdefault(kind_of(frame), []).append(frame)
        if frame.get("method") == "deal_update":
            roles.add(frame["data"]["info"]["tradeRole"])
        if kind_of(frame) == "order_update_finished":
            finish_states.add(frame["data"]["info"]["state"])
        if (
            set(by_kind) >= WANTED
            and roles == {"maker", "taker"}
            and finish_states == {"completed", "canceled"}
            and sim.account.open_orders()
        ):
            break
    sim.pause()
    client.drain()
    yield sim, client, by_kind, acks
    client.close()
    sim.stop()


def test_golden_envelopes_wrap_the_spec_data_examples() -> None:
    for name in ("ticker_update", "depth_update", "trade_update"):
        assert GOLDEN[name]["data"] == GOLDEN[f"{name}_data"]
        assert_same_shape(GOLDEN[name], GOLDEN["lastprice_update"] | {"data": GOLDEN[name]["data"]})


@pytest.mark.parametrize(
    ("kind", "golden_name"),
    [
        ("lastprice_update", "lastprice_update"),
        ("ticker_update", "ticker_update"),
        ("depth_update", "depth_update"),
        ("depth_reload", "depth_update"),
        ("trade_update", "trade_update"),
        ("order_update_created", "order_update_created"),
        ("order_update_updated", "order_update_updated"),
        ("order_update_finished", "order_update_finished"),
        ("balance_update", "balance_update"),
        ("deal_update", "deal_update"),
    ],
)
def test_events_have_the_spec_shape(session, kind: str, golden_name: str) -> None:
    _, _, by_kind, _ = session
    frames = by_kind[kind][:200]
    assert frames
    for frame in frames:
        assert_same_shape(frame, GOLDEN[golden_name])


def test_event_ids_are_zero_for_public_and_strings_for_private(session) -> None:
    _, _, by_kind, _ = session
    seen = set()
    for kind, frames in by_kind.items():
        channel = kind.split("_")[0]
        for frame in frames:
            if channel in PUBLIC:
                assert frame["id"] == 0 and type(frame["id"]) is int
            else:
                assert channel in PRIVATE
                assert isinstance(frame["id"], str) and frame["id"] == GOLDEN_IDS[channel]
            seen.add(channel)
    assert seen == set(CHANNELS)


GOLDEN_IDS = {
    "order": GOLDEN["order_update_finished"]["id"],
    "balance": GOLDEN["balance_update"]["id"],
    "deal": GOLDEN["deal_update"]["id"],
}


def test_subscribe_acks_have_the_spec_shape(session) -> None:
    _, _, _, acks = session
    for channel, ack in acks.items():
        if channel == "deal":
            assert_same_shape(ack, GOLDEN["deal_subscribe_ack"])
        else:
            assert_same_shape(ack, GOLDEN["subscribe_ack"])
            assert ack["method"] == f"{channel}_subscribe"
        assert ack["data"] == {"status": "success"}


def test_pong_unsubscribe_and_errors_have_the_spec_shape(session) -> None:
    _, client, _, _ = session
    pong = client.request("ping")
    assert_same_shape(pong, GOLDEN["pong_response"])
    duplicate = client.request("trade_subscribe", ["BTC_USDT"])
    assert_same_shape(duplicate, GOLDEN["subscribe_error"])
    assert duplicate["error"]["code"] == 2
    # params must be a list: a wrong-shape request (the generator is paused, so
    # the next frame is the response)
    client.ws.send('{"id": 555, "method": "trade_subscribe", "params": "BTC_USDT"}')
    malformed = client.recv()
    assert malformed["id"] == 555
    assert_same_shape(malformed, GOLDEN["malformed_request_error"])
    assert malformed["error"]["code"] == 1
    unsubscribe = client.request("lastprice_unsubscribe", ["all"])
    assert_same_shape(unsubscribe, GOLDEN["unsubscribe_ack"])


def test_rest_bodies_have_the_spec_shape(session) -> None:
    sim, _, _, _ = session
    token = get(sim, TOKEN_PATH, signed=True).json()
    assert_same_shape(token, GOLDEN["token_response"])
    assert re.fullmatch(r"[0-9a-f]{64}", token["token"])
    assert_same_shape(get(sim, "/v1/exchange/market").json(), GOLDEN["market_list_response"])
    for symbol in sim.markets:
        scales = get(sim, "/api/v2/symbol-scales", params={"symbol": symbol}).json()
        assert_same_shape(scales, GOLDEN["symbol_scales_response"])
        assert [entry["index"] for entry in scales["data"]] == list(range(len(scales["data"])))
    balances = get(sim, "/v2/user-api/exchange/account/balance", signed=True).json()
    assert_same_shape(balances, GOLDEN["balance_response"])
    orders = get(sim, "/v2/user-api/exchange/orders", signed=True, params={"limit": 100}).json()
    assert orders["result"]
    assert_same_shape(orders, GOLDEN["orders_response"])
