"""The Grafana dashboards: structure, variables, datasource, units, legends, and that every
panel query is valid PromQL once Grafana's variables are substituted."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest

from tests.rules.dashboard_queries import (
    ALL,
    DASHBOARD_DIR,
    iter_panel_queries,
    iter_panels,
    iter_variable_queries,
    load_dashboards,
    substitute,
    variable_definitions,
)
from tests.rules.exposed import COMMON_LABELS, exposed_labels
from tests.rules.promql import (
    METRIC_PREFIX,
    blank_strings,
    label_replace_targets,
    legend_labels,
    selectors,
)
from tests.rules.promtool_runner import run_promtool

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
UIDS = {"cryptomus-health", "cryptomus-markets", "cryptomus-account"}
GRID_WIDTH = 24
LABELS_BY_METRIC = exposed_labels()
SAMPLE_VARIABLES = {"job": "cryptomus-exporter", "instance": ALL,
                    "market": ["BTC_USDT", "ETH_USDT"], "currency": ALL}

DASHBOARDS = load_dashboards()


def panels_of(dashboard: dict) -> list[dict]:
    return [panel for panel in iter_panels(dashboard) if panel["type"] != "row"]


def all_panels() -> list[tuple[str, dict]]:
    return [(name, panel) for name, dashboard in DASHBOARDS.items()
            for panel in panels_of(dashboard)]


def panel_id(item: tuple[str, dict]) -> str:
    return f"{item[0]}:{item[1]['title']}"


def test_three_dashboards_with_fixed_unique_uids():
    uids = [dashboard["uid"] for dashboard in DASHBOARDS.values()]
    assert sorted(uids) == sorted(UIDS)
    for name, dashboard in DASHBOARDS.items():
        assert name == f"{dashboard['uid']}.json"
        assert dashboard["schemaVersion"] == 39
        assert dashboard.get("id") is None
    assert len({d["title"] for d in DASHBOARDS.values()}) == len(DASHBOARDS)


def test_dashboards_are_what_the_generator_writes():
    spec = importlib.util.spec_from_file_location("generate", DASHBOARD_DIR / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    built = generate.build()
    assert set(built) == set(DASHBOARDS)
    for name, dashboard in built.items():
        on_disk = (DASHBOARD_DIR / name).read_text(encoding="utf-8")
        assert generate.render(dashboard) == on_disk, (
            f"{name} is out of date: run python dashboards/generate.py")


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_variables(name):
    definitions = variable_definitions(DASHBOARDS[name])
    assert list(definitions)[:5] == ["datasource", "cluster", "job", "instance", "market"]
    datasource = definitions["datasource"]
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")
    for variable in ("cluster", "job", "instance", "market"):
        definition = definitions[variable]
        assert definition["type"] == "query"
        assert definition["datasource"] == DATASOURCE
        assert definition["query"].startswith("label_values(")
    market = definitions["market"]
    assert market["multi"] and market["includeAll"] and market["allValue"] == ".*"
    assert "cryptomus_last_price" in market["query"]
    # Without a cluster label the variable has no values: All (".*") still matches "".
    cluster = definitions["cluster"]
    assert cluster["includeAll"] and cluster["allValue"] == ".*"
    for variable in ("job", "instance", "market"):
        assert 'cluster=~"$cluster"' in definitions[variable]["query"], variable


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_grafana_com_import_header(name):
    dashboard = DASHBOARDS[name]
    [source] = dashboard["__inputs"]
    assert (source["type"], source["pluginId"]) == ("datasource", "prometheus")
    placeholder = "${" + source["name"] + "}"
    assert variable_definitions(dashboard)["datasource"]["current"]["value"] == placeholder
    requires = {(item["type"], item["id"]) for item in dashboard["__requires"]}
    panel_types = {panel["type"] for panel in panels_of(dashboard)}
    assert requires == {("grafana", "grafana"), ("datasource", "prometheus"),
                        *(("panel", kind) for kind in panel_types)}


@pytest.mark.parametrize("item", all_panels(), ids=panel_id)
def test_no_panel_counts_an_event_twice(item):
    """increase() over $__rate_interval spans more than one step between points, so an
    event is counted in several points; panels show rates instead, and say so."""
    _, panel = item
    description = panel["description"].lower()
    assert "per interval" not in description
    for target in panel["targets"]:
        assert not re.search(r"increase\([^\]]*\[\$__rate_interval\]", target["expr"]), target
        if "rate(" in target["expr"] and panel["fieldConfig"]["defaults"]["unit"] == "cpm":
            assert target["expr"].startswith("60 * "), target
            assert "per minute" in description


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_no_hard_coded_datasource(name):
    def walk(node, path):
        if isinstance(node, dict):
            if isinstance(node.get("datasource"), dict) and path[:2] != ("annotations", "list"):
                assert node["datasource"] == DATASOURCE, "/".join(map(str, path))
            for key, value in node.items():
                walk(value, (*path, key))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, (*path, index))

    walk(DASHBOARDS[name], ())


@pytest.mark.parametrize("item", all_panels(), ids=panel_id)
def test_panel_and_targets_use_the_datasource_variable(item):
    _, panel = item
    assert panel["datasource"] == DATASOURCE
    assert panel["targets"]
    for target in panel["targets"]:
        assert target["datasource"] == DATASOURCE


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panel_ids_unique(name):
    ids = [panel["id"] for panel in iter_panels(DASHBOARDS[name])]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("item", all_panels(), ids=panel_id)
def test_panel_has_unit_legend_and_description(item):
    _, panel = item
    assert panel["fieldConfig"]["defaults"].get("unit"), "no unit"
    assert panel["fieldConfig"]["defaults"]["unit"] != "currencyUSD"
    assert panel.get("description")
    ref_ids = [target["refId"] for target in panel["targets"]]
    assert len(ref_ids) == len(set(ref_ids))
    for target in panel["targets"]:
        assert target.get("legendFormat"), "no legend"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_grid_positions_fit_and_do_not_overlap(name):
    occupied: set[tuple[int, int]] = set()
    for panel in iter_panels(DASHBOARDS[name]):
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= GRID_WIDTH
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                 for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells


@pytest.mark.parametrize("item", all_panels(), ids=panel_id)
def test_queries_filter_by_cluster_job_instance_and_market(item):
    _, panel = item
    for target in panel["targets"]:
        for selector in selectors(target["expr"]):
            if selector.name != "up" and not selector.name.startswith(METRIC_PREFIX):
                continue
            matchers = {(m.label, m.op, m.value) for m in selector.matchers}
            assert ("cluster", "=~", "$cluster") in matchers, selector
            assert ("job", "=~", "$job") in matchers, selector
            assert ("instance", "=~", "$instance") in matchers, selector
            if "market" in LABELS_BY_METRIC[selector.name]:
                assert ("market", "=~", "$market") in matchers, selector


@pytest.mark.parametrize("item", all_panels(), ids=panel_id)
def test_legends_name_existing_labels(item):
    _, panel = item
    for target in panel["targets"]:
        expr = target["expr"]
        available = set(COMMON_LABELS) | label_replace_targets(expr)
        for selector in selectors(expr):
            available |= LABELS_BY_METRIC.get(selector.name, set())
        assert legend_labels(target["legendFormat"]) <= available, target


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_variable_is_substituted(name):
    queries = iter_panel_queries(DASHBOARDS[name], SAMPLE_VARIABLES)
    queries += iter_variable_queries(DASHBOARDS[name], SAMPLE_VARIABLES)
    assert queries
    for title, expr in queries:
        assert not re.search(r"\$\w|\$\{|\[\[", blank_strings(expr)), title
        assert "$" not in expr, title


@pytest.mark.prometheus
def test_substituted_queries_are_valid_promql(promtool, tmp_path):
    """promtool parses every query, as a recording rule (it has no bare query checker)."""
    rules = [
        {"record": f"dashboard_query_{index}", "expr": expr}
        for index, (_, expr) in enumerate(
            query
            for dashboard in DASHBOARDS.values()
            for query in (iter_panel_queries(dashboard, SAMPLE_VARIABLES)
                          + iter_variable_queries(dashboard, SAMPLE_VARIABLES)))
    ]
    path = tmp_path / "queries.rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboards", "rules": rules}]}),
                    encoding="utf-8")
    result = run_promtool(promtool, "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


# --- the substitution helper the end-to-end test relies on ---------------------------------

MULTI = {"market": {"name": "market", "multi": True, "includeAll": True, "allValue": ".*"},
         "job": {"name": "job", "multi": False, "includeAll": False}}


@pytest.mark.parametrize(("expr", "variables", "expected"), [
    ('x{market=~"$market"}', {"market": ["BTC_USDT", "ETH_USDT"]},
     'x{market=~"(BTC_USDT|ETH_USDT)"}'),
    ('x{market=~"$market"}', {"market": ["BTC_USDT"]}, 'x{market=~"BTC_USDT"}'),
    ('x{market=~"$market"}', {"market": "BTC_USDT"}, 'x{market=~"BTC_USDT"}'),
    ('x{market=~"$market"}', {"market": ALL}, 'x{market=~".*"}'),
    ('x{market=~"$market"}', {}, 'x{market=~".*"}'),
    ('x{market=~"${market}"}', {"market": ["A.B", "C|D"]}, 'x{market=~"(A\\\\.B|C\\\\|D)"}'),
    ('x{market=~"[[market]]"}', {"market": ["A"]}, 'x{market=~"A"}'),
    ('x{market=~"${market:pipe}"}', {"market": ["A", "B"]}, 'x{market=~"A|B"}'),
    ('x{job=~"$job"}', {"job": "cryptomus-exporter"}, 'x{job=~"cryptomus-exporter"}'),
    ('x{job="$job"}', {"job": 'a"b'}, 'x{job="a\\"b"}'),
    ("rate(x[$__rate_interval])", {}, "rate(x[1m])"),
    ("rate(x[$__rate_interval]) / $__interval_ms", {"__rate_interval": "30s"},
     "rate(x[30s]) / 15000"),
    ('x{a=~"^$"}', {}, 'x{a=~"^$"}'),
])
def test_substitute(expr, variables, expected):
    assert substitute(expr, variables, MULTI) == expected


def test_substitute_rejects_unknown_variables_and_bad_values():
    with pytest.raises(KeyError):
        substitute('x{a="$nope"}', {}, MULTI)
    with pytest.raises(ValueError, match="single-valued"):
        substitute('x{job="$job"}', {"job": ["a", "b"]}, MULTI)
    with pytest.raises(ValueError, match="allValue"):
        substitute('x{job="$job"}', {"job": ALL}, MULTI)
    with pytest.raises(ValueError, match="mixed"):
        substitute('x{market=~"$market"}', {"market": [ALL, "A"]}, MULTI)


def test_iter_panel_queries_covers_every_target():
    dashboard = DASHBOARDS["cryptomus-health.json"]
    queries = iter_panel_queries(dashboard, SAMPLE_VARIABLES)
    targets = [target for panel in panels_of(dashboard) for target in panel["targets"]]
    assert len(queries) == len(targets)
    assert iter_panel_queries(json.dumps(dashboard), SAMPLE_VARIABLES) == queries
    assert iter_panel_queries(DASHBOARD_DIR / "cryptomus-health.json", SAMPLE_VARIABLES) == queries
    assert ("WebSocket connected",
            'cryptomus_websocket_connected{cluster=~".*", job=~"cryptomus-exporter", '
            'instance=~".*"}') in queries


def test_iter_variable_queries():
    queries = dict(iter_variable_queries(DASHBOARDS["cryptomus-markets.json"],
                                         {"job": "cryptomus-exporter", "instance": ALL}))
    assert queries == {
        "cluster": "group by (cluster) (cryptomus_exporter_build_info)",
        "job": 'group by (job) (cryptomus_exporter_build_info{cluster=~".*"})',
        "instance": 'group by (instance) (cryptomus_exporter_build_info{cluster=~".*", '
                    'job=~"cryptomus-exporter"})',
        "market": 'group by (market) (cryptomus_last_price{cluster=~".*", '
                  'job=~"cryptomus-exporter", instance=~".*"})',
    }
