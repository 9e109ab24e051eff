"""End to end: the simulator feeds the exporter, a real Prometheus scrapes it and evaluates the
shipped rules; every dashboard query and rule expression is run through Prometheus' HTTP API,
and a dropped connection must make the disconnect alert pending.

The tests share one set-up and run in file order: the steady-state checks come before the
fault, which is last.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import pytest
import requests

from exporter.metrics import SPECS
from tests.e2e.prometheus import (
    PrometheusServer,
    describe,
    find_prometheus,
    has_finite_value,
)
from tests.rules.dashboard_queries import (
    ALL,
    iter_panel_queries,
    iter_rules,
    iter_variable_queries,
    load_dashboards,
    main_rules_path,
)
from tests.rules.promql import selectors
from tests.rules.promtool_runner import find_promtool
from tests.support import ExporterProcess, SimulatorProcess, wait_for

pytestmark = pytest.mark.prometheus

JOB = "cryptomus-exporter"  # the job name every rule selector uses
MARKETS = ("BTC_USDT", "ETH_USDT", "TRX_USDT")
CURRENCIES = ("BTC", "ETH", "TRX", "USDT")  # the simulated account's balances for MARKETS
ONE_MARKET = "BTC_USDT"
ONE_CURRENCY = "USDT"
EXPORTER_FLAGS = (
    "--websocket.ping-interval", "1",  # ping RTT histogram fills within seconds
    "--collector.reconcile-interval", "2",  # so do the REST histograms
    "--websocket.backoff-min", "0.1",
    "--websocket.backoff-max", "1",  # reconnect promptly once the fault is cleared
    # explicit markets: their depth scale lists are checked (orderbook_scale_missing 0)
    "--cryptomus.markets", ",".join(MARKETS),
)
SIMULATOR_FLAGS = ("--markets", ",".join(MARKETS), "--rate", "50", "--seed", "1")
# Time the stack may take, once scraped, to accumulate data for every query (rate windows
# need two samples, the account needs to trade); queries keep polling until then.
DATA_BUDGET = 20.0
DISCONNECT_ALERT = "CryptomusWebsocketDisconnected"
REFUSE_SECONDS = 60  # longer than the fault test; cleared explicitly at its end
# Series that do not exist in the healthy steady state, so a panel selecting them shows the
# 0 of its `or vector(0)` fallback; every other selector of every panel must match series.
ABSENT_WHEN_HEALTHY = {
    "cryptomus_orderbook_resyncs_total": "born with a book's first resync (there is none)",
}

DASHBOARDS = load_dashboards()
RULES = iter_rules(main_rules_path())
VARIANTS = ("all", "one-market")


def _panel_cases() -> list[pytest.param]:
    """(dashboard, index of the query in iter_panel_queries), named dashboard:panel title."""
    cases = []
    for name, dashboard in DASHBOARDS.items():
        # The variables only change the text of a query, not which queries there are.
        queries = iter_panel_queries(dashboard, {"job": JOB})
        seen: Counter[str] = Counter()
        for index, (title, _expr) in enumerate(queries):
            seen[title] += 1
            suffix = f" #{seen[title]}" if seen[title] > 1 else ""
            cases.append(pytest.param(name, index, id=f"{dashboard['uid']}:{title}{suffix}"))
    return cases


def series_selectors(expr: str) -> list[str]:
    """The vector selectors in ``expr``, each as a query of its own."""
    return [
        selector.name + "{" + ", ".join(f'{m.label}{m.op}"{m.value}"' for m in selector.matchers)
        + "}"
        for selector in selectors(expr)
        if selector.name not in ABSENT_WHEN_HEALTHY
    ]


def _variable_cases() -> list[pytest.param]:
    return [pytest.param(name, variable, id=f"{dashboard['uid']}:${variable}")
            for name, dashboard in DASHBOARDS.items()
            for variable, _query in iter_variable_queries(dashboard, {"job": JOB})]


@dataclass
class Binaries:
    prometheus: str
    promtool: str


@dataclass
class Stack:
    simulator: SimulatorProcess
    exporter: ExporterProcess
    prometheus: PrometheusServer
    promtool: str
    instance: str
    data_deadline: float

    def variables(self, variant: str) -> dict[str, str]:
        if variant == "all":
            return {"job": JOB, "instance": ALL, "market": ALL, "currency": ALL}
        return {"job": JOB, "instance": self.instance, "market": ONE_MARKET,
                "currency": ONE_CURRENCY}

    def wait_for_data(self, expr: str) -> list[dict]:
        """``expr``'s samples once one is a number, polling until the data budget is spent."""
        return self.prometheus.wait_for_samples(
            expr, timeout=max(0.0, self.data_deadline - time.monotonic()),
            accept=has_finite_value)


@pytest.fixture(scope="module")
def binaries() -> Binaries:
    prometheus, promtool = find_prometheus(), find_promtool()
    if prometheus is None or promtool is None:
        message = "prometheus and promtool are needed (Debian package 'prometheus')"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must install them: apt-get install -y prometheus")
        pytest.skip(f"{message}; not installed here (in CI this fails)")
    return Binaries(prometheus, promtool)


@pytest.fixture(scope="module")
def stack(binaries: Binaries) -> Iterator[Stack]:
    with ExitStack() as processes:  # closed in reverse: Prometheus, exporter, simulator
        simulator = processes.enter_context(SimulatorProcess(*SIMULATOR_FLAGS))
        exporter = processes.enter_context(
            ExporterProcess(*EXPORTER_FLAGS, env=simulator.exporter_env()))
        instance = f"127.0.0.1:{exporter.port}"
        prometheus = processes.enter_context(
            PrometheusServer(binaries.prometheus, JOB, [instance], [main_rules_path()]))
        # The first scrape comes about 6 s after start (service discovery's update delay).
        prometheus.wait_for_series(f'up{{job="{JOB}"}} == 1', timeout=30)
        prometheus.wait_for_series(f'cryptomus_websocket_connected{{job="{JOB}"}} == 1',
                                   timeout=15)
        yield Stack(simulator, exporter, prometheus, binaries.promtool, instance,
                    data_deadline=time.monotonic() + DATA_BUDGET)


# --- dashboards ---------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(("dashboard", "index"), _panel_cases())
def test_panel_query_returns_data(stack: Stack, dashboard: str, index: int, variant: str) -> None:
    title, expr = iter_panel_queries(DASHBOARDS[dashboard], stack.variables(variant))[index]
    assert stack.wait_for_data(expr), f"panel {title!r} shows no data: {expr}"
    # A fallback such as `or vector(0)` must not hide a selector that matches nothing.
    for selector in series_selectors(expr):
        stack.prometheus.wait_for_series(
            selector, timeout=max(0.0, stack.data_deadline - time.monotonic()))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(("dashboard", "variable"), _variable_cases())
def test_variable_query_returns_values(stack: Stack, dashboard: str, variable: str,
                                       variant: str) -> None:
    queries = dict(iter_variable_queries(DASHBOARDS[dashboard], stack.variables(variant)))
    # One Prometheus without a cluster label: $cluster has no values, and its All value
    # (".*") matches the empty label in every other query (test_panel_query_returns_data).
    expected = {"cluster": {None}, "job": {JOB}, "instance": {stack.instance},
                "market": set(MARKETS), "currency": set(CURRENCIES)}[variable]
    samples = stack.prometheus.wait_for_samples(
        queries[variable], timeout=max(0.0, stack.data_deadline - time.monotonic()),
        accept=lambda found: {sample["metric"].get(variable) for sample in found} == expected)
    assert {sample["metric"].get(variable) for sample in samples} == expected


# --- rules --------------------------------------------------------------------------


def _rule_id(rule: dict) -> str:
    return rule.get("alert") or rule["record"]


@pytest.mark.parametrize("rule", [rule for rule in RULES if "record" in rule], ids=_rule_id)
def test_recording_rule_evaluates_and_is_recorded(stack: Stack, rule: dict) -> None:
    stack.wait_for_data(rule["expr"])
    recorded = stack.wait_for_data(rule["record"])
    assert {sample["metric"].get("market") for sample in recorded} == set(MARKETS), (
        describe(recorded))


def test_spread_threshold_defaults_without_overrides(stack: Stack) -> None:
    thresholds = stack.wait_for_data("market:cryptomus_orderbook_spread_ratio:threshold")
    assert {sample["metric"]["market"]: float(sample["value"][1]) for sample in thresholds} == (
        dict.fromkeys(MARKETS, 0.02))


@pytest.mark.parametrize("rule", [rule for rule in RULES if "alert" in rule], ids=_rule_id)
def test_alert_expression_evaluates_and_is_quiet_when_healthy(stack: Stack, rule: dict) -> None:
    samples = stack.prometheus.query(rule["expr"])  # raises on a parse or evaluation error
    assert samples == [], f"{rule['alert']} holds in the healthy steady state:\n{describe(samples)}"


def test_loaded_rules_are_healthy(stack: Stack) -> None:
    groups = stack.prometheus.wait_for_rule_evaluation()
    loaded = [rule for group in groups for rule in group["rules"]]
    assert sorted(rule["name"] for rule in loaded) == sorted(map(_rule_id, RULES))
    unhealthy = {rule["name"]: (rule["health"], rule.get("lastError")) for rule in loaded
                 if rule["health"] != "ok" or rule.get("lastError")}
    assert unhealthy == {}


def test_no_alert_pending_or_firing_when_healthy(stack: Stack) -> None:
    stack.prometheus.wait_for_rule_evaluation()  # every rule has seen the scraped data
    active = {alert["labels"]["alertname"]: alert["state"] for alert in stack.prometheus.alerts()}
    assert active == {}, f"alerts active in the healthy steady state: {active}"


# --- exposition ---------------------------------------------------------------------


def test_promtool_check_metrics_is_clean(stack: Stack) -> None:
    response = requests.get(f"http://127.0.0.1:{stack.exporter.port}/metrics", timeout=5)
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    missing = [spec.full_name for spec in SPECS if f"# TYPE {spec.full_name} " not in response.text]
    assert missing == [], "the linted exposition lacks these metric families"
    result = subprocess.run([stack.promtool, "check", "metrics"], input=response.text,
                            capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


# --- the fault: last, it changes the exporter's state ----------------------------------


def test_dropped_connection_makes_disconnect_alert_pending_then_recovers(stack: Stack) -> None:
    prometheus = stack.prometheus
    connected = f'cryptomus_websocket_connected{{job="{JOB}"}} == 1'
    disconnected = f'cryptomus_websocket_connected{{job="{JOB}"}} == 0'
    alert_expr = next(rule["expr"] for rule in RULES if rule.get("alert") == DISCONNECT_ALERT)

    def disconnect_alerts() -> list[dict]:
        return [alert for alert in prometheus.alerts()
                if alert["labels"]["alertname"] == DISCONNECT_ALERT]

    prometheus.wait_for_series(connected, timeout=15)
    stack.simulator.fault("refuse_connections", seconds=REFUSE_SECONDS)
    try:
        assert stack.simulator.fault("drop_connections")["result"] >= 1, "no socket to drop"
        prometheus.wait_for_series(disconnected, timeout=15)
        holding = prometheus.query(alert_expr)
        assert [sample["metric"]["instance"] for sample in holding] == [stack.instance], (
            f"{DISCONNECT_ALERT}'s expression does not hold while disconnected: {alert_expr}")
        # "for: 2m": the alert is pending for the whole test, it must not fire yet.
        pending = wait_for(disconnect_alerts, timeout=15, what=f"{DISCONNECT_ALERT} pending")
        assert [(alert["state"], alert["labels"]["instance"], alert["labels"]["severity"])
                for alert in pending] == [("pending", stack.instance, "critical")]
    finally:
        stack.simulator.fault("clear")
    prometheus.wait_for_series(connected, timeout=20)
    wait_for(lambda: not disconnect_alerts(), timeout=15,
             what=f"{DISCONNECT_ALERT} to resolve after the reconnect")
