"""The dashboards against Grafana's own dashboard schema, as grafana-foundation-sdk (the
official models generated from Grafana's schemas, pinned to a Grafana 11 build) knows it.

Decoding with the SDK and encoding back must give the same JSON: a key Grafana's schema
does not know is dropped by the round trip. The decoded models are then walked against
their type hints, so an enum value Grafana does not know ("drawStyle": "lines"), a wrong
type or an unknown unit fails too. ``__inputs``/``__requires``/``__elements`` belong to the
export format Grafana wraps around a dashboard, not to the dashboard schema.
"""

from __future__ import annotations

import copy
import enum
import json
import types
import typing
from importlib.metadata import version

import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import prometheus, units
from grafana_foundation_sdk.models.dashboard import Dashboard

from tests.rules.dashboard_queries import iter_panels, load_dashboards

DASHBOARDS = load_dashboards()
EXPORT_KEYS = ("__inputs", "__requires", "__elements")
KNOWN_UNITS = {value for value in vars(units).values() if isinstance(value, str)}

register_default_plugins()  # typed panel options, field config and Prometheus queries


def test_the_sdk_is_a_grafana_11_build() -> None:
    assert version("grafana-foundation-sdk").split("!")[-1].startswith("11."), (
        "pin an 11.x build (pyproject.toml); a plain install gets the Grafana 10.1 schema")


def decode(dashboard_json: dict) -> Dashboard:
    body = {key: value for key, value in dashboard_json.items() if key not in EXPORT_KEYS}
    return Dashboard.from_json(copy.deepcopy(body))


def encode(model: Dashboard) -> dict:
    return json.loads(json.dumps(model, cls=JSONEncoder))


def lost_in_round_trip(original: object, encoded: object, path: str = "") -> list[str]:
    """Keys and values of ``original`` that the encoded model does not reproduce
    (keys the model adds with their defaults are fine)."""
    if isinstance(original, dict) and isinstance(encoded, dict):
        return [problem for key, value in original.items()
                for problem in (lost_in_round_trip(value, encoded[key], f"{path}/{key}")
                                if key in encoded else [f"{path}/{key}: not in the schema"])]
    if isinstance(original, list) and isinstance(encoded, list) and len(original) == len(encoded):
        return [problem for index, (a, b) in enumerate(zip(original, encoded, strict=True))
                for problem in lost_in_round_trip(a, b, f"{path}/{index}")]
    return [] if original == encoded else [f"{path}: {original!r} came back as {encoded!r}"]


def type_problems(value: object, hint: object, path: str) -> list[str]:
    """Where ``value`` does not fit the SDK type hint ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in (typing.Any, object):  # panel options and custom field config: the plugin's model
        return model_problems(value, path)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return []
        fits = [type_problems(value, arg, path) for arg in args if arg is not type(None)]
        return [] if any(not problems for problems in fits) else min(fits, key=len)
    if origin is typing.Literal:
        return [] if value in args else [f"{path}: {value!r} is not one of {args}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {value!r}"]
        return [problem for index, item in enumerate(value)
                for problem in type_problems(item, args[0], f"{path}/{index}")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: expected a map, got {value!r}"]
        return [problem for key, item in value.items()
                for problem in type_problems(item, args[1], f"{path}/{key}")]
    if not isinstance(hint, type):
        return []
    if issubclass(hint, enum.Enum):
        try:
            hint(value)
        except ValueError:
            return [f"{path}: {value!r} is not a {hint.__name__} ({[m.value for m in hint]})"]
        return []
    if hint is bool:
        return [] if isinstance(value, bool) else [f"{path}: expected a boolean, got {value!r}"]
    if hint in (int, float):
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        exact = hint is float or isinstance(value, int)
        return [] if numeric and exact else [f"{path}: expected {hint.__name__}, got {value!r}"]
    if hint is str:
        return [] if isinstance(value, str) else [f"{path}: expected a string, got {value!r}"]
    if not isinstance(value, hint):
        return [f"{path}: expected {hint.__name__}, got {type(value).__name__}"]
    return model_problems(value, path)


def model_problems(value: object, path: str) -> list[str]:
    """An SDK model's fields against their type hints; anything else passes."""
    if not hasattr(value, "to_json"):
        return []
    hints = typing.get_type_hints(type(value))
    return [problem for name, field_hint in hints.items()
            for problem in type_problems(getattr(value, name), field_hint, f"{path}/{name}")]


def schema_problems(dashboard_json: dict) -> list[str]:
    model = decode(dashboard_json)
    body = {key: value for key, value in dashboard_json.items() if key not in EXPORT_KEYS}
    return lost_in_round_trip(body, encode(model)) + type_problems(model, Dashboard, "")


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_fits_grafanas_schema(name: str) -> None:
    assert schema_problems(DASHBOARDS[name]) == []


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panels_decode_to_their_typed_options_and_prometheus_queries(name: str) -> None:
    model = decode(DASHBOARDS[name])
    panels = [panel for panel in model.panels if panel.type_val != "row"]
    assert panels
    for panel in panels:
        # Registered panel types decode options into models, unknown ones stay plain dicts.
        assert not isinstance(panel.options, dict), f"{panel.title}: unknown panel type"
        assert panel.targets
        for query in panel.targets:
            assert isinstance(query, prometheus.Dataquery), panel.title


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_units_are_grafana_units(name: str) -> None:
    for panel in iter_panels(DASHBOARDS[name]):
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        if unit is not None:
            assert unit in KNOWN_UNITS, f"{panel['title']}: unknown unit {unit!r}"


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda d: d["panels"][1].update(transparant=True), "/panels/1/transparant: not in"),
    (lambda d: d["panels"][1]["options"]["legend"].update(displayMode="tabel"),
     "'tabel' is not a LegendDisplayMode"),
    (lambda d: d["panels"][1]["fieldConfig"]["defaults"]["custom"].update(drawStyle="lines"),
     "'lines' is not a GraphDrawStyle"),
    (lambda d: d["panels"][1]["targets"][0].update(editorMode="codez"), "'codez'"),
    (lambda d: d.update(graphTooltip=7), "7 is not a DashboardCursorSync"),
    (lambda d: d["templating"]["list"][1].update(refresh="often"), "'often'"),
    (lambda d: d["panels"][1]["gridPos"].update(w="wide"), "/panels/1/grid_pos/w"),
], ids=["unknown key", "options enum", "field config enum", "query enum", "dashboard enum",
        "variable enum", "wrong type"])
def test_the_schema_check_catches_mistakes(edit, expected: str) -> None:
    dashboard = copy.deepcopy(DASHBOARDS["cryptomus-markets.json"])
    assert dashboard["panels"][1]["type"] == "timeseries"
    edit(dashboard)
    problems = schema_problems(dashboard)
    assert any(expected in problem for problem in problems), problems
