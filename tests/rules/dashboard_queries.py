"""Turn dashboard panels and rule files into plain PromQL.

Used by the structural tests here and by the end-to-end test that runs every panel
query against a real Prometheus:

    from tests.rules.dashboard_queries import ALL, iter_panel_queries, load_dashboards
    for title, expr in iter_panel_queries(dashboard, {"job": "cryptomus-exporter",
                                                      "instance": ALL,
                                                      "market": ["BTC_USDT", "ETH_USDT"]}):
        ...

Variables are interpolated the way Grafana's Prometheus data source does it: a single
value of a single-value variable as is; values of a multi-value or include-all variable
regex-escaped and, when there are several, joined as ``(a|b)``; All as the variable's
``allValue`` (``.*`` in these dashboards).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = REPO / "dashboards"
RULES_DIR = REPO / "alerts"

ALL = "$__all"  # Grafana's value for the "All" option

# Grafana's built-in interval variables; override them through the variables dict
# (e.g. {"__rate_interval": "30s"}).
BUILTIN_DEFAULTS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}

# $name, ${name}, ${name:format}, [[name]], [[name:format]]
_VARIABLE = re.compile(
    r"\$\{(?P<braced>\w+)(?::(?P<braced_format>\w+))?\}"
    r"|\[\[(?P<bracketed>\w+)(?::(?P<bracketed_format>\w+))?\]\]"
    r"|\$(?P<plain>\w+)"
)
# The characters Grafana's Prometheus data source escapes in regex variables.
_REGEX_SPECIAL = re.compile(r"[$^*{}\[\]'+?.()|\\]")


def _regex_escape(value: str) -> str:
    # Regex-escaped, then escaped again for a double-quoted PromQL string: "a\\.b".
    return _REGEX_SPECIAL.sub(lambda match: "\\\\" + match.group(), value)


def _string_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _load(source: Mapping | str | Path, parse) -> Mapping:
    if isinstance(source, Mapping):
        return source
    if isinstance(source, Path):
        source = source.read_text(encoding="utf-8")
    return parse(source)


def iter_panels(dashboard: Mapping) -> Iterator[Mapping]:
    """Every panel, including those nested in collapsed rows; rows themselves too."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def _format(name: str, value: str | list[str], definition: Mapping | None,
            fmt: str | None) -> str:
    values = [value] if isinstance(value, str) else list(value)
    if not values:
        raise ValueError(f"variable {name!r} has no value")
    if values == [ALL]:
        if definition is None or not definition.get("allValue"):
            raise ValueError(f"variable {name!r} has no allValue: pass its values instead")
        return definition["allValue"]
    if ALL in values:
        raise ValueError(f"variable {name!r}: {ALL!r} cannot be mixed with other values")
    multi = bool(definition and (definition.get("multi") or definition.get("includeAll")))
    if fmt == "regex" or (fmt is None and multi):
        escaped = [_regex_escape(item) for item in values]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
    if fmt is None:
        if len(values) > 1:
            raise ValueError(f"variable {name!r} is single-valued but got {values!r}")
        return _string_escape(values[0])
    if fmt == "pipe":
        return "|".join(values)
    if fmt in {"raw", "csv"}:
        return ",".join(values)
    raise ValueError(f"variable {name!r}: unsupported format {fmt!r}")


def substitute(expr: str, variables: Mapping[str, str | list[str]],
               definitions: Mapping[str, Mapping] | None = None) -> str:
    """``expr`` with every Grafana variable replaced.

    ``definitions`` are the dashboard's templating entries by name (they say whether a
    variable is multi-value and what All means). A dashboard variable missing from
    ``variables`` is taken as All; any other unknown variable raises ``KeyError``.
    """
    definitions = definitions or {}
    values = {**BUILTIN_DEFAULTS, **variables}

    def replace(match: re.Match) -> str:
        name = match["braced"] or match["bracketed"] or match["plain"]
        fmt = match["braced_format"] or match["bracketed_format"]
        definition = definitions.get(name)
        if name in values:
            value = values[name]
        elif definition is not None:
            value = ALL
        else:
            raise KeyError(f"no value for variable ${name} in {expr!r}")
        return _format(name, value, definition, fmt)

    return _VARIABLE.sub(replace, expr)


def variable_definitions(dashboard: Mapping) -> dict[str, Mapping]:
    return {item["name"]: item for item in dashboard.get("templating", {}).get("list", [])}


def iter_panel_queries(dashboard_json: Mapping | str | Path,
                       variables: Mapping[str, str | list[str]]) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every visible Prometheus target of every panel.

    ``dashboard_json``: the parsed dashboard, its JSON text, or a Path to it.
    ``variables``: name -> value or list of values (or ``ALL``); built-ins such as
    ``__rate_interval`` have defaults in ``BUILTIN_DEFAULTS``.
    """
    dashboard = _load(dashboard_json, json.loads)
    definitions = variable_definitions(dashboard)
    return [
        (panel["title"], substitute(target["expr"], variables, definitions))
        for panel in iter_panels(dashboard)
        for target in panel.get("targets", [])
        if target.get("expr") and not target.get("hide")
    ]


_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<selector>.+),\s*)?(?P<label>\w+)\s*\)\s*$")


def iter_variable_queries(dashboard_json: Mapping | str | Path,
                          variables: Mapping[str, str | list[str]]) -> list[tuple[str, str]]:
    """(variable name, PromQL) for every ``label_values(selector, label)`` query variable,
    as ``group by (label) (selector)`` so it can be run with /api/v1/query."""
    dashboard = _load(dashboard_json, json.loads)
    definitions = variable_definitions(dashboard)
    queries = []
    for name, definition in definitions.items():
        if definition.get("type") != "query":
            continue
        query = definition["query"]
        text = query["query"] if isinstance(query, Mapping) else query
        match = _LABEL_VALUES.match(text)
        if match is None or match["selector"] is None:
            raise ValueError(f"variable {name!r}: expected label_values(selector, label)")
        selector = substitute(match["selector"], variables, definitions)
        queries.append((name, f"group by ({match['label']}) ({selector})"))
    return queries


def iter_rules(rules_yaml: Mapping | str | Path) -> list[Mapping]:
    """Every rule mapping (alerting and recording) of a Prometheus rule file, in order.

    ``rules_yaml``: the parsed file, its YAML text, or a Path to it.
    """
    rules = _load(rules_yaml, yaml.safe_load)
    return [rule for group in rules["groups"] for rule in group["rules"]]


def iter_rule_exprs(rules_yaml: Mapping | str | Path) -> list[tuple[str, str]]:
    """(alert or record name, expr) for every rule in a Prometheus rule file."""
    return [(rule.get("alert") or rule["record"], rule["expr"]) for rule in iter_rules(rules_yaml)]


def dashboard_paths() -> list[Path]:
    return sorted(DASHBOARD_DIR.glob("*.json"))


def load_dashboards() -> dict[str, dict]:
    """Every dashboard in dashboards/, by file name."""
    return {path.name: json.loads(path.read_text(encoding="utf-8"))
            for path in dashboard_paths()}


def rule_paths() -> list[Path]:
    """The shipped rule files: the main file and the examples (not the unit tests)."""
    return sorted([*RULES_DIR.glob("*.rules.yml"), *RULES_DIR.glob("examples/*.rules.yml")])


def main_rules_path() -> Path:
    return RULES_DIR / "cryptomus-exporter.rules.yml"
