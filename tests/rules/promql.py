"""Lexical helpers for PromQL: enough to find metric names, selectors and labels.

Not a parser: string literals are blanked first, so quotes, braces and names inside
label values never confuse the scan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"' r"|'(?:[^'\\]|\\.)*'" r"|`[^`]*`")
# A name starts where no name, number, duration or Grafana "$" character precedes it.
_NAME = re.compile(r"(?<![\w:.$])[a-zA-Z_:][\w:]*")
_MATCHER = re.compile(r'(?P<label>\w+)\s*(?P<op>=~|!~|!=|=)\s*"(?P<value>(?:[^"\\]|\\.)*)"')
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\((?P<labels>[^)]*)\)")
_LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_KEYWORDS = frozenset({
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "offset", "bool", "atan2", "inf", "nan",
    # aggregation operators may put their grouping clause before the parenthesis
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile",
})
METRIC_PREFIX = "cryptomus_"


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str


@dataclass(frozen=True)
class Selector:
    name: str
    matchers: tuple[Matcher, ...]

    def matcher(self, label: str) -> Matcher | None:
        return next((m for m in self.matchers if m.label == label), None)


def blank_strings(expr: str) -> str:
    """``expr`` with the contents of every string literal replaced by spaces (same offsets)."""
    return _STRING.sub(lambda m: m.group()[0] + " " * (len(m.group()) - 2) + m.group()[-1], expr)


def selectors(expr: str) -> list[Selector]:
    """Every vector selector (``name`` or ``name{...}``); function names and keywords skipped."""
    blank = blank_strings(expr)
    found = []
    for match in _NAME.finditer(blank):
        name, end = match.group(), match.end()
        rest = blank[end:].lstrip()
        if name in _KEYWORDS or rest.startswith("("):
            continue
        if _inside_braces_or_parens_list(blank, match.start()):
            continue
        matchers: tuple[Matcher, ...] = ()
        if rest.startswith("{"):
            open_at = blank.index("{", end)
            close_at = blank.index("}", open_at)
            matchers = tuple(Matcher(m["label"], m["op"], m["value"])
                             for m in _MATCHER.finditer(expr[open_at + 1:close_at]))
        found.append(Selector(name, matchers))
    return found


def _inside_braces_or_parens_list(blank: str, position: int) -> bool:
    """True for names that are label names: inside ``{...}`` or a grouping ``(...)``."""
    before = blank[:position]
    if before.rfind("{") > before.rfind("}"):
        return True
    return any(m.start("labels") <= position <= m.end("labels") for m in _GROUPING.finditer(blank))


def metric_names(expr: str) -> set[str]:
    """Names of exported metrics (``cryptomus_*``) selected in ``expr``."""
    return {s.name for s in selectors(expr) if s.name.startswith(METRIC_PREFIX)}


def recording_names(expr: str) -> set[str]:
    """Names of recording-rule series (they contain a colon) selected in ``expr``."""
    return {s.name for s in selectors(expr) if ":" in s.name}


def grouping_labels(expr: str) -> set[str]:
    """Labels named in by/without/on/ignoring/group_left/group_right clauses."""
    return {label.strip()
            for m in _GROUPING.finditer(blank_strings(expr))
            for label in m["labels"].split(",") if label.strip()}


_LABEL_REPLACE_TAIL = re.compile(r'"(\w+)"\s*,\s*"[^"]*"\s*,\s*"[^"]*"\s*,\s*"[^"]*"\s*\)')


def label_replace_targets(expr: str) -> set[str]:
    """Destination labels of label_replace(v, "dst", "replacement", "src", "regex") calls."""
    return set(_LABEL_REPLACE_TAIL.findall(expr)) if "label_replace" in expr else set()


def legend_labels(legend: str) -> set[str]:
    return set(_LEGEND_LABEL.findall(legend))
