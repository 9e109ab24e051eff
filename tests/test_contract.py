"""Contract between exporter.metrics.SPECS and everything that names metrics: alert rules,
their unit tests, dashboards (and README's metrics table once it exists).

A renamed or removed metric, a misspelled label or label value, or a histogram queried
without its _bucket/_sum/_count suffix fails here instead of in Grafana at 3 a.m.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from exporter import channels
from exporter.collectors import (
    AccountCollector,
    BookCollector,
    ConnectionCollector,
    HttpCollector,
    MarketCollector,
)
from exporter.httpguard import EVICTABLE_PHASES, REFUSE_REASONS, REJECT_REASONS, TIMEOUT_PHASES
from exporter.metrics import SPECS, SPECS_BY_NAME
from exporter.session import CONNECT_STAGES, DISCONNECT_REASONS
from exporter.settings import ALL_CHANNELS, Settings
from exporter.state import ERROR_REASONS, RESYNC_REASONS
from tests.rules.dashboard_queries import (
    REPO,
    RULES_DIR,
    iter_panel_queries,
    iter_panels,
    iter_rule_exprs,
    iter_variable_queries,
    load_dashboards,
    rule_paths,
)
from tests.rules.exposed import COMMON_LABELS, exposed_labels, query_names
from tests.rules.promql import (
    METRIC_PREFIX,
    grouping_labels,
    metric_names,
    recording_names,
    selectors,
)

EXPOSED = exposed_labels()
ALL_LABELS = set().union(*EXPOSED.values()) | COMMON_LABELS
README = REPO / "README.md"
# Only the single-value variables need a value; the others default to All.
VARIABLE_VALUES = {"job": "cryptomus-exporter"}

# Metrics no dashboard panel shows, each with the reason. Add "name": "reason" here rather
# than leaving a metric unexplained.
NOT_CHARTED: dict[str, str] = {}

# The label values the exporter uses where the set is fixed (the metrics contract and the
# constants in exporter/session.py and exporter/protocol.py).
_CHANNELS = set(channels.names())
_ENDPOINTS = {"token", "markets", "scales", "balance", "orders"}
_TRADE_SIDES = {"buy", "sell"}
_ROLES = {"maker", "taker"}
KNOWN_LABEL_VALUES: dict[tuple[str, str], set[str]] = {
    ("websocket_disconnects_total", "reason"): set(DISCONNECT_REASONS),
    ("websocket_message_errors_total", "reason"): set(ERROR_REASONS),
    ("websocket_connect_failures_total", "stage"): set(CONNECT_STAGES),
    ("websocket_subscriptions", "channel"): _CHANNELS,
    ("websocket_subscribe_failures_total", "channel"): _CHANNELS,
    ("market_last_update_timestamp_seconds", "channel"): set(channels.market_update_names()),
    ("api_requests_total", "endpoint"): _ENDPOINTS,
    ("api_request_duration_seconds", "endpoint"): _ENDPOINTS,
    ("orderbook_resyncs_total", "reason"): set(RESYNC_REASONS),
    ("http_connections_refused_total", "reason"): set(REFUSE_REASONS),
    ("http_connections_timed_out_total", "phase"): set(TIMEOUT_PHASES.values()),
    ("http_connections_evicted_total", "phase"): set(EVICTABLE_PHASES),
    ("http_requests_rejected_total", "reason"): set(REJECT_REASONS),
    ("orderbook_levels", "side"): {"bid", "ask"},
    ("orderbook_depth", "side"): {"bid", "ask"},
    ("trades_total", "side"): _TRADE_SIDES,
    ("traded_base_volume_total", "side"): _TRADE_SIDES,
    ("traded_quote_volume_total", "side"): _TRADE_SIDES,
    ("open_orders", "side"): _TRADE_SIDES,
    ("order_events_total", "side"): _TRADE_SIDES,
    ("order_events_total", "event"): {"created", "updated", "finished"},
    ("orders_finished_total", "side"): _TRADE_SIDES,
    ("fills_total", "role"): _ROLES,
    ("filled_base_volume_total", "role"): _ROLES,
    ("filled_quote_volume_total", "role"): _ROLES,
}
_PLAIN_ALTERNATION = re.compile(r"^\w+(\|\w+)*$")


def spec_name(sample_name: str) -> str:
    """The SPECS name a queried sample belongs to (namespace and histogram suffix removed)."""
    name = sample_name.removeprefix(METRIC_PREFIX)
    if name not in SPECS_BY_NAME:
        name = re.sub(r"_(bucket|sum|count)$", "", name)
    return name


def rule_exprs() -> list[tuple[str, str]]:
    return [(f"{path.name}:{name}", expr)
            for path in rule_paths() for name, expr in iter_rule_exprs(path)]


def recorded_names() -> set[str]:
    return {name for path in rule_paths() for name, _ in iter_rule_exprs(path) if ":" in name}


def dashboard_exprs() -> list[tuple[str, str]]:
    """Every dashboard query with its variables left in (as Grafana stores it)."""
    exprs = []
    for file_name, dashboard in load_dashboards().items():
        for panel in iter_panels(dashboard):
            exprs += [(f"{file_name}:{panel['title']}", target["expr"])
                      for target in panel.get("targets", [])]
        exprs += [(f"{file_name}:${name}", query)
                  for name, query in iter_variable_queries(dashboard, VARIABLE_VALUES)]
    return exprs


def unit_test_series() -> list[tuple[str, str]]:
    series = []
    for path in sorted((RULES_DIR / "tests").glob("*.test.yml")):
        suite = yaml.safe_load(path.read_text(encoding="utf-8"))
        series += [(f"{path.name}:{group['name']}", item["series"])
                   for group in suite["tests"] for item in group.get("input_series", [])]
    return series


ALL_EXPRS = rule_exprs() + dashboard_exprs()
ALL_WITH_SERIES = ALL_EXPRS + unit_test_series()


def where_ids(items: list[tuple[str, str]]) -> list[str]:
    return [where for where, _ in items]


@pytest.mark.parametrize(("where", "expr"), ALL_WITH_SERIES, ids=where_ids(ALL_WITH_SERIES))
def test_metric_names_exist(where, expr):
    for name in metric_names(expr):
        assert name in EXPOSED, f"{where}: {name} is not exposed (see exporter/metrics.py SPECS)"
    for selector in selectors(expr):
        assert (selector.name in EXPOSED or ":" in selector.name), (
            f"{where}: {selector.name} is neither an exported metric nor a recording rule")


@pytest.mark.parametrize(("where", "expr"), ALL_EXPRS, ids=where_ids(ALL_EXPRS))
def test_recording_rule_names_are_recorded(where, expr):
    assert recording_names(expr) <= recorded_names(), where


@pytest.mark.parametrize(("where", "expr"), ALL_EXPRS, ids=where_ids(ALL_EXPRS))
def test_selector_labels_exist(where, expr):
    for selector in selectors(expr):
        if selector.name not in EXPOSED:
            continue
        allowed = EXPOSED[selector.name] | COMMON_LABELS
        for matcher in selector.matchers:
            assert matcher.label in allowed, f"{where}: {selector.name} has no {matcher.label}"


@pytest.mark.parametrize(("where", "expr"), ALL_EXPRS, ids=where_ids(ALL_EXPRS))
def test_grouping_labels_exist(where, expr):
    assert grouping_labels(expr) <= ALL_LABELS, where


@pytest.mark.parametrize(("where", "expr"), ALL_WITH_SERIES, ids=where_ids(ALL_WITH_SERIES))
def test_label_values_are_known(where, expr):
    for selector in selectors(expr):
        for matcher in selector.matchers:
            known = KNOWN_LABEL_VALUES.get((spec_name(selector.name), matcher.label))
            if known is None or "$" in matcher.value:
                continue
            if matcher.op in {"=", "!="}:
                values = {matcher.value}
            elif _PLAIN_ALTERNATION.match(matcher.value):
                values = set(matcher.value.split("|"))
            else:
                continue  # a real regex such as code!~"2..": nothing to enumerate
            assert values <= known, f"{where}: {selector.name}{{{matcher.label}}} {values}"


def test_every_metric_is_charted_or_explained():
    charted = {name for _, expr in dashboard_exprs() for name in metric_names(expr)}
    uncharted = {spec.name for spec in SPECS if not set(query_names(spec)) & charted}
    assert uncharted == set(NOT_CHARTED), (
        "chart these metrics or list them in NOT_CHARTED with a reason: "
        f"{sorted(uncharted - set(NOT_CHARTED))}; charted after all: "
        f"{sorted(set(NOT_CHARTED) - uncharted)}")
    assert all(reason.strip() for reason in NOT_CHARTED.values())


def test_dashboard_queries_reference_metrics_at_all():
    """Guards the scan itself: if it found nothing, every check above would pass vacuously."""
    charted = {name for _, expr in dashboard_exprs() for name in metric_names(expr)}
    in_rules = {name for _, expr in rule_exprs() for name in metric_names(expr)}
    assert len(charted) >= len(SPECS) - len(NOT_CHARTED)
    assert "cryptomus_websocket_ping_rtt_seconds_bucket" in in_rules
    assert all(iter_panel_queries(dashboard, VARIABLE_VALUES)
               for dashboard in load_dashboards().values())


def readme_metric_names(readme: Path) -> set[str] | None:
    """Metric names listed in the first column of README's markdown tables, with the
    ``cryptomus_`` prefix (added when the table omits it) and without labels; None when
    README.md does not exist.

    A row counts when its first cell holds a backticked name, e.g.
    ``| `cryptomus_last_price` | gauge | market | ... |`` or ``| `trades_total{side}` | ...``.
    """
    if not readme.exists():
        return None
    names = set()
    for line in readme.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\|\s*`([a-z_:][a-z0-9_:]*)(?:\{[^`]*\})?`\s*\|", line)
        if match:
            name = match.group(1)
            names.add(name if name.startswith(METRIC_PREFIX) else METRIC_PREFIX + name)
    return names


def test_readme_metrics_table_matches_specs():
    names = readme_metric_names(README)
    if names is None:
        pytest.skip("README.md does not exist yet")
    assert names == {spec.full_name for spec in SPECS}


def test_readme_metric_names_parses_a_table(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        "| metric | type |\n|---|---|\n"
        "| `cryptomus_last_price` | gauge |\n"
        "| `trades_total{market,side}` | counter |\n"
        "| `CRYPTOMUS_MARKETS` | not a metric row: upper case |\n",
        encoding="utf-8",
    )
    assert readme_metric_names(readme) == {"cryptomus_last_price", "cryptomus_trades_total"}
    assert readme_metric_names(tmp_path / "missing.md") is None


# --- the channel table and the collectors -----------------------------------------------

# Metrics of the market and account groups that no channel feeds, each with the reason.
NOT_FROM_A_CHANNEL = {"balance_held": "only the REST reconciliation knows held balances"}


def test_the_channel_table_agrees_with_the_metrics_table():
    assert channels.problems(channels.CHANNELS, SPECS) == []


def test_every_market_and_account_metric_comes_from_a_channel():
    fed = {name for channel in channels.CHANNELS for name in channel.families}
    for spec in SPECS:
        if spec.group in ("market", "account") and spec.name not in NOT_FROM_A_CHANNEL:
            assert spec.name in fed, f"{spec.name}: no channel in channels.CHANNELS feeds it"


def test_every_metric_has_exactly_one_producer():

    producers: dict[str, list[str]] = {}
    for collector in (MarketCollector, BookCollector, AccountCollector, ConnectionCollector,
                      HttpCollector):
        for name in collector.NAMES:
            producers.setdefault(name, []).append(collector.__name__)
    for spec in SPECS:
        if spec.instrument:
            producers.setdefault(spec.name, []).append("metrics.Instruments")
    assert {name: who for name, who in producers.items() if len(who) != 1} == {}
    assert set(producers) == set(SPECS_BY_NAME)


def test_settings_offer_exactly_the_channels_of_the_table():

    assert channels.names() == ALL_CHANNELS
    assert Settings.model_fields["channels"].default == channels.names()


def test_only_the_collectors_and_the_instruments_make_metrics():
    """docs/ARCHITECTURE.md's rule: metric families come from exporter/collectors/, metric
    objects only from metrics.Instruments; elsewhere prometheus-client is only imported
    for the registry, rendering, or the histogram's type."""
    allowed_elsewhere = {"CollectorRegistry", "Histogram", "generate_latest", "exposition",
                         "Collector", "floatToGoString"}
    package = REPO / "exporter"
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package).as_posix()
        if relative.startswith(("simulator/", "collectors/")) or relative == "metrics.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "prometheus_client"):
                names = {alias.name for alias in node.names}
                assert names <= allowed_elsewhere, f"{relative} imports {names}"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value
                the_one_place = isinstance(owner, ast.Name) and owner.id == "collectors"
                assert node.func.attr not in ("inc", "dec", "set_function", "register") or (
                    the_one_place), f"{relative}:{node.lineno} touches a metric"
