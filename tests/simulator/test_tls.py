"""The simulator over TLS: https:// REST and wss:// WebSocket on one loopback port,
checked with a self-signed certificate made for the test."""

from __future__ import annotations

import ssl

import pytest
import requests
import websocket

from exporter.simulator import Simulator, SimulatorConfig

from .conftest import HTTP_TIMEOUT, Client, get, get_token

CLOSE = websocket.ABNF.OPCODE_CLOSE


def test_rest_and_websocket_over_tls(start_sim, tls_files) -> None:
    cert, key = map(str, tls_files)
    sim = start_sim(rate=500.0, tls_cert=cert, tls_key=key)
    assert sim.base_url == f"https://127.0.0.1:{sim.port}"
    assert sim.ws_url == f"wss://127.0.0.1:{sim.port}/ws"
    markets = get(sim, "/v1/exchange/market", verify=cert).json()["result"]
    assert [m["symbol"] for m in markets] == sim.markets
    with pytest.raises(requests.exceptions.SSLError):  # not trusted without the certificate
        get(sim, "/v1/exchange/market")
    with pytest.raises(requests.exceptions.ConnectionError):  # plain HTTP on the TLS port
        requests.get(f"http://127.0.0.1:{sim.port}/v1/exchange/market", timeout=HTTP_TIMEOUT)
    with pytest.raises(ssl.SSLError):
        Client(sim, get_token(sim, verify=cert))  # wss:// without the CA
    client = Client(sim, get_token(sim, verify=cert), sslopt={"ca_certs": cert})
    client.subscribe("lastprice")
    assert {f["method"] for f in client.events(20)} == {"lastprice_update"}
    assert client.request("ping")["method"] == "pong"
    assert sim.stats.connections_accepted == 1
    sim.stop()
    for _ in range(10_000):
        opcode, data = client.recv_frame()
        if opcode == CLOSE:
            assert int.from_bytes(data[:2], "big") == 1001
            break
    else:
        raise AssertionError("no close frame")


def test_tls_files_are_checked_at_construction(tmp_path, tls_files) -> None:
    cert, key = map(str, tls_files)
    with pytest.raises(ValueError, match="tls_cert/tls_key"):
        Simulator(SimulatorConfig(tls_cert=cert, tls_key=str(tmp_path / "missing.pem")))
    with pytest.raises(ValueError, match="tls_cert/tls_key"):
        Simulator(SimulatorConfig(tls_cert=key, tls_key=cert))

