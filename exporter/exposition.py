"""/metrics bodies, byte for byte what prometheus-client renders, at a fraction of the cost.

prometheus-client's ``generate_latest`` formats every series from scratch on every
scrape: it sorts and escapes the labels and formats the name, about 3 us per series,
ten times what our collectors spend producing the samples. Between two scrapes a
series' name and labels do not change, and most values do not either, so
:class:`Exposition` keeps each series' rendered ``name{labels} `` and its last value's
text, and a scrape only looks them up. The cache holds exactly the series of the
latest scrape (each render builds a new one from the old), so series that disappear
are not kept.

Only the common case takes this path: legacy-valid metric and label names, under
an escaping scheme that leaves such names as they are, no exemplars, no native
histograms, no missing values. Any other metric family, and the whole body under
any other escaping, is rendered by prometheus-client itself. A property test
(tests/unit/test_exposition.py) checks the output against prometheus-client's.

Content negotiation follows prometheus-client's ``choose_encoder`` (first acceptable
type in the order listed, no q-values), so clients see the same types as before.
"""

from __future__ import annotations

import gc
import gzip
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import generate_latest as text_generate_latest
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_generate_latest
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TEXT_1_CONTENT_TYPE = "text/plain; version=1.0.0; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
OPENMETRICS_EOF = "# EOF\n"
# gzip level 1: a third of level 9's CPU on an exposition, about 10 % larger.
GZIP_LEVEL = 1

_LEGACY_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LEGACY_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Under these schemes prometheus-client writes a legacy-valid name as it is ("dots"
# rewrites "_"; in OpenMetrics sample lines "values" rewrites every name). Sample
# names must also be valid label names: OpenMetrics sample lines rewrite ":".
_NAME_PRESERVING_ESCAPINGS = {
    False: frozenset({openmetrics.UNDERSCORES, openmetrics.ALLOWUTF8, openmetrics.VALUES}),
    True: frozenset({openmetrics.UNDERSCORES, openmetrics.ALLOWUTF8}),
}
# Samples the text format moves out of their family into a gauge family of their own.
_TEXT_SEPARATE_SUFFIXES = ("_created", "_gsum", "_gcount")
_TEXT_TYPES = {"counter": "counter", "info": "gauge", "stateset": "gauge",
               "gaugehistogram": "histogram", "unknown": "untyped"}
_TEXT_NAME_SUFFIXES = {"counter": "_total", "info": "_info"}


@dataclass(frozen=True)
class Format:
    """What a scrape asked for: the body's format and escaping, and its Content-Type."""

    openmetrics: bool
    escaping: str
    content_type: str


TEXT = Format(openmetrics=False, escaping=openmetrics.UNDERSCORES,
              content_type=TEXT_CONTENT_TYPE)
OPENMETRICS = Format(openmetrics=True, escaping=openmetrics.UNDERSCORES,
                     content_type=OPENMETRICS_CONTENT_TYPE)


def _parameter(media_range: list[str], key: str) -> str:
    for token in media_range[1:]:
        name, equals, value = token.strip().partition("=")
        if equals and name == key:
            return value
    return ""


def _version_at_least_1(version: str) -> bool:
    major = version.split(".", 1)[0]
    return major.isdigit() and int(major) >= 1


def _escaping(media_range: list[str]) -> str:
    value = _parameter(media_range, "escaping")
    known = (openmetrics.ALLOWUTF8, openmetrics.UNDERSCORES, openmetrics.DOTS, openmetrics.VALUES)
    return value if value in known else openmetrics.UNDERSCORES


def negotiate(accept: str | None) -> Format:
    """The format for an ``Accept`` header, as prometheus-client's ``choose_encoder`` picks it."""
    for accepted in (accept or "").split(","):
        media_range = accepted.split(";")
        media_type = media_range[0].strip()
        if media_type == "application/openmetrics-text":
            version = _parameter(media_range, "version")
            if not version:
                return OPENMETRICS
            if _version_at_least_1(version):
                escaping = _escaping(media_range)
                content_type = (f"application/openmetrics-text; version={version}; "
                                f"charset=utf-8; escaping={escaping}")
                return Format(openmetrics=True, escaping=escaping, content_type=content_type)
        elif media_type == "text/plain":
            version = _parameter(media_range, "version")
            if version and _version_at_least_1(version):
                escaping = _escaping(media_range)
                return Format(openmetrics=False, escaping=escaping,
                              content_type=f"{TEXT_1_CONTENT_TYPE}; escaping={escaping}")
    return TEXT


def gzip_accepted(accept_encoding: str | None) -> bool:
    return any(coding.split(";")[0].strip().lower() == "gzip"
               for coding in (accept_encoding or "").split(","))


def go_float(value: Any) -> str:
    """``floatToGoString`` (Go's float formatting), without its work for short values."""
    text = repr(float(value))
    if len(text) < 8:  # the exponent form starts at 7 digits before the point: 9 characters
        if text[-1] in "0123456789":
            return text
        return {"inf": "+Inf", "-inf": "-Inf", "nan": "NaN"}[text]
    return floatToGoString(value)


def _escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _labels_text(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    pairs = ",".join(f'{name}="{_escape_label_value(value)}"'
                     for name, value in sorted(labels.items()))
    return "{" + pairs + "}"


class _OneFamily:
    """A collector of one already-collected family, for prometheus-client to render."""

    def __init__(self, metric: Any) -> None:
        self.metric = metric

    def collect(self) -> Iterable[Any]:
        return [self.metric]


def _library_body(registry: Collector, fmt: Format) -> bytes:
    if fmt.openmetrics:
        return openmetrics_generate_latest(registry, escaping=fmt.escaping)
    return text_generate_latest(registry, escaping=fmt.escaping)


def _library_family(metric: Any, fmt: Format) -> str:
    """One family as prometheus-client renders it, without OpenMetrics' closing line."""
    body = _library_body(_OneFamily(metric), fmt).decode()
    return body.removesuffix(OPENMETRICS_EOF) if fmt.openmetrics else body


class Exposition:
    """Renders a registry's families for /metrics, caching what stays the same."""

    def __init__(self) -> None:
        # (sample name, *label names, *label values) -> (line, value).
        # The same in both formats and every name-preserving escaping: only
        # timestamps differ, and they are added outside.
        self._series: dict[tuple[Any, ...], tuple[str, Any]] = {}
        self._headers: dict[tuple[Any, ...], tuple[str, dict[str, str]]] = {}

    def render(self, registry: Collector, fmt: Format, *, remember: bool = True) -> bytes:
        """The body; ``remember=False`` for a partial scrape, which must not shrink the cache."""
        if fmt.escaping not in _NAME_PRESERVING_ESCAPINGS[fmt.openmetrics]:
            return _library_body(registry, fmt)
        previous = self._series
        current: dict[tuple[Any, ...], tuple[str, Any]] = {}
        output: list[str] = []
        render_family = self._openmetrics_family if fmt.openmetrics else self._text_family
        # Nothing a render allocates outlives it or forms a cycle, yet tens of thousands
        # of samples would trigger collections that walk the whole heap: pause the
        # collector meanwhile. Collecting and rendering never yield to the gevent hub.
        collecting = gc.isenabled()
        gc.disable()
        try:
            for metric in registry.collect():
                start = len(output)
                try:
                    render_family(metric, output, previous, current)
                except _Unsupported:
                    del output[start:]
                    output.append(_library_family(metric, fmt))
        finally:
            if collecting:
                gc.enable()
        if fmt.openmetrics:
            output.append(OPENMETRICS_EOF)
        if remember:
            self._series = current
        return "".join(output).encode()

    def _header(self, metric: Any, openmetrics_format: bool) -> tuple[str, dict[str, str]]:
        """The family's HELP/TYPE(/UNIT) lines, and (text format) its separated samples."""
        key = (openmetrics_format, metric.name, metric.type, metric.documentation, metric.unit)
        cached = self._headers.get(key)
        if cached is None:
            if not _LEGACY_NAME.fullmatch(metric.name):
                raise _Unsupported
            if openmetrics_format:
                cached = (_openmetrics_header(metric), {})
            else:
                cached = (_text_header(metric), {metric.name + suffix: suffix
                                                 for suffix in _TEXT_SEPARATE_SUFFIXES})
            self._headers[key] = cached
        return cached

    def _openmetrics_family(self, metric: Any, output: list[str], previous: dict,
                            current: dict) -> None:
        output.append(self._header(metric, openmetrics_format=True)[0])
        for sample in metric.samples:
            line = _line(sample, previous, current)
            if sample.timestamp is not None:
                line = f"{line[:-1]} {sample.timestamp}\n"
            output.append(line)

    def _text_family(self, metric: Any, output: list[str], previous: dict,
                     current: dict) -> None:
        header, separate_names = self._header(metric, openmetrics_format=False)
        output.append(header)
        separated: dict[str, list[str]] = {}
        for sample in metric.samples:
            line = _line(sample, previous, current)
            if sample.timestamp is not None:
                line = f"{line[:-1]} {int(float(sample.timestamp) * 1000):d}\n"
            suffix = separate_names.get(sample.name)
            if suffix is None:
                output.append(line)
            else:
                separated.setdefault(suffix, []).append(line)
        for suffix, lines in sorted(separated.items()):
            name = metric.name + suffix
            output.append(f"# HELP {name} {_text_help(metric.documentation)}\n"
                          f"# TYPE {name} gauge\n")
            output.extend(lines)


class _Unsupported(Exception):
    """A family this module leaves to prometheus-client."""


def _line(sample: Any, previous: dict, current: dict) -> str:
    """``name{labels} value\\n`` from the cache, rendering only what changed."""
    value = sample.value
    if value is None or sample.exemplar is not None or sample.native_histogram is not None:
        raise _Unsupported
    labels = sample.labels
    key = (sample.name, *labels, *labels.values())
    entry = previous.get(key)  # (line, value)
    if entry is None:
        if not (_LEGACY_LABEL_NAME.fullmatch(sample.name)
                and all(map(_LEGACY_LABEL_NAME.fullmatch, labels))):
            raise _Unsupported
        entry = (f"{sample.name}{_labels_text(labels)} {go_float(value)}\n", value)
    elif value != entry[1] or not value:  # 0.0 and -0.0 are equal but not written alike
        line = entry[0]
        entry = (f"{line[:line.rindex(' ') + 1]}{go_float(value)}\n", value)
    current[key] = entry
    return entry[0]


def _text_help(documentation: str) -> str:
    return documentation.replace("\\", r"\\").replace("\n", r"\n")


def _text_header(metric: Any) -> str:
    name = metric.name + _TEXT_NAME_SUFFIXES.get(metric.type, "")
    text_type = _TEXT_TYPES.get(metric.type, metric.type)
    return f"# HELP {name} {_text_help(metric.documentation)}\n# TYPE {name} {text_type}\n"


def _openmetrics_header(metric: Any) -> str:
    header = (f"# HELP {metric.name} {_escape_label_value(metric.documentation)}\n"
              f"# TYPE {metric.name} {metric.type}\n")
    if metric.unit:
        header += f"# UNIT {metric.name} {metric.unit}\n"
    return header


def metrics_response(
    exposition: Exposition, registry: Any, accept: str | None, accept_encoding: str | None,
    names: list[str] | None = None,
) -> tuple[list[tuple[str, str]], bytes]:
    """Headers and body of a /metrics response; ``names``: only those families (``name[]``)."""
    fmt = negotiate(accept)
    source = registry.restricted_registry(names) if names else registry
    body = exposition.render(source, fmt, remember=not names)
    headers = [("Content-Type", fmt.content_type)]
    if gzip_accepted(accept_encoding):
        body = gzip.compress(body, compresslevel=GZIP_LEVEL)
        headers.append(("Content-Encoding", "gzip"))
    return headers, body


