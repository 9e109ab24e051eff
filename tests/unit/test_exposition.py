"""exporter.exposition renders exactly what prometheus-client renders, only faster."""

from __future__ import annotations

import gc
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    Summary,
    generate_latest,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.samples import Exemplar, Sample, Timestamp
from prometheus_client.utils import floatToGoString

from exporter.exposition import OPENMETRICS, TEXT, Exposition, Format, go_float, negotiate

ESCAPINGS = ("underscores", "allow-utf-8", "values", "dots")
FORMATS = [Format(openmetrics, escaping, "") for openmetrics in (False, True)
           for escaping in ESCAPINGS]

legacy_names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
utf8_names = st.sampled_from(["a.b", "käse", "with space", "0starts_with_digit"])
label_values = st.text(alphabet=st.sampled_from('ab\\"\n é.{},='), max_size=6)
documentation = st.text(alphabet=st.sampled_from('ab \\"\n'), max_size=8)
values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e6, 1234567.0, 1e16, 1764098283.123456, 5e-324]),
    st.integers(min_value=-(10**12), max_value=10**12),
)


def library(registry, fmt: Format) -> bytes:
    if fmt.openmetrics:
        return openmetrics_latest(registry, escaping=fmt.escaping)
    return generate_latest(registry, escaping=fmt.escaping)


class FixedFamilies:
    """A collector returning families built by the test (any type, timestamps, exemplars)."""

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def collect(self) -> list[Metric]:
        return self.families


@st.composite
def registries(draw):
    registry = CollectorRegistry()
    used: set[str] = set()

    def fresh_name() -> str:
        name = draw(legacy_names.filter(lambda n: all(not u.startswith(n) and not n.startswith(u)
                                                      for u in used)))
        used.add(name)
        return name

    label_names = draw(st.lists(legacy_names, max_size=2, unique=True))
    children = draw(st.lists(st.tuples(*[label_values] * len(label_names)), max_size=3))
    doc = draw(documentation)
    for kind in (Counter, Gauge, Histogram, Summary):
        metric = kind(fresh_name(), doc, label_names, registry=registry)
        for child_labels in children:
            child = metric.labels(*child_labels) if label_names else metric
            value = abs(draw(st.floats(min_value=0, max_value=1e9)))
            if kind is Gauge:
                child.set(draw(values))
            elif kind is Counter:
                child.inc(value)
            else:
                child.observe(value)
    Info(fresh_name(), doc, registry=registry).info({"version": draw(label_values)})
    Enum(fresh_name(), doc, states=["up", "down"], registry=registry).state("down")
    custom = FixedFamilies()
    registry.register(custom)
    for kind in ("gauge", "unknown", "gaugehistogram", "counter"):
        name = fresh_name()
        family = Metric(name, draw(documentation), kind, unit=draw(st.sampled_from(["", "s"])))
        sample_name = {"counter": name + "_total", "gaugehistogram": name + "_bucket"}.get(
            kind, name)
        labels = {"le": "+Inf"} if kind == "gaugehistogram" else {}
        if draw(st.booleans()):
            labels[draw(st.one_of(legacy_names, utf8_names))] = draw(label_values)
        timestamp = draw(st.sampled_from([None, 1.5, Timestamp(1_700_000_000, 250)]))
        exemplar = draw(st.sampled_from([None, Exemplar({"trace": "x"}, 1.0)]))
        family.samples.append(Sample(sample_name, labels, draw(values), timestamp,
                                     exemplar if kind == "counter" else None))
        if kind == "gaugehistogram":
            family.samples.append(Sample(name + "_gcount", {}, 1.0))
            family.samples.append(Sample(name + "_gsum", {}, 2.0))
        custom.families.append(family)
    if draw(st.booleans()):
        odd = Metric(draw(utf8_names), "not a legacy name", "gauge")
        odd.samples.append(Sample(odd.name, {}, 1.0))
        custom.families.append(odd)
    return registry, custom


@settings(max_examples=150, deadline=None)
@given(registries(), st.sampled_from(FORMATS))
def test_bodies_are_what_prometheus_client_renders(generated, fmt):
    registry, _ = generated
    exposition = Exposition()
    assert exposition.render(registry, fmt) == library(registry, fmt)
    assert exposition.render(registry, fmt) == library(registry, fmt)  # from the cache


@settings(max_examples=100, deadline=None)
@given(registries(), st.lists(values, min_size=1, max_size=4))
def test_changed_values_are_rendered_again(generated, new_values):
    registry, custom = generated
    exposition = Exposition()
    for value in new_values:
        for family in custom.families:
            family.samples[0] = family.samples[0]._replace(value=value)
        for fmt in (TEXT, OPENMETRICS):
            assert exposition.render(registry, fmt) == library(registry, fmt)


def test_a_series_that_disappears_leaves_the_cache():
    registry = CollectorRegistry()
    gauge = Gauge("price", "Price.", ["market"], registry=registry)
    for market in ("A", "B", "C"):
        gauge.labels(market).set(1.0)
    exposition = Exposition()
    exposition.render(registry, TEXT)
    cached = len(exposition._series)
    gauge.remove("B")
    body = exposition.render(registry, TEXT)
    assert b'market="B"' not in body
    assert len(exposition._series) == cached - 1


def test_a_partial_scrape_keeps_the_rest_of_the_cache():
    registry = CollectorRegistry()
    Gauge("a", "A.", registry=registry).set(1)
    Gauge("b", "B.", registry=registry).set(2)
    exposition = Exposition()
    exposition.render(registry, TEXT)
    cached = dict(exposition._series)
    partial = exposition.render(registry.restricted_registry(["a"]), TEXT, remember=False)
    assert partial == generate_latest(registry.restricted_registry(["a"]))
    assert exposition._series == cached


class Broken:
    def collect(self):
        raise RuntimeError("collector failed")


@pytest.mark.parametrize("enabled", [True, False])
def test_the_garbage_collector_is_left_as_it_was(enabled):
    registry = CollectorRegistry()
    Gauge("a", "A.", registry=registry).set(1)
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        Exposition().render(registry, TEXT)
        assert gc.isenabled() is enabled
        registry.register(Broken())
        with pytest.raises(RuntimeError):
            Exposition().render(registry, OPENMETRICS)
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


@given(values)
def test_go_float_is_prometheus_clients_float_format(value):
    assert go_float(value) == floatToGoString(value)


def test_negative_zero_keeps_its_sign_after_zero():
    registry = CollectorRegistry()
    gauge = Gauge("g", "G.", registry=registry)
    exposition = Exposition()
    for value in (0.0, -0.0, 0.0, math.nan, math.nan):
        gauge.set(value)
        assert exposition.render(registry, TEXT) == generate_latest(registry)


@pytest.mark.parametrize("accept", [
    None,
    "",
    "*/*",
    "text/plain",
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "application/openmetrics-text",
    "application/openmetrics-text; version=1.0.0",
    "application/openmetrics-text; version=0.0.1",
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",  # Prometheus 2.x
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;"
    "escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1",  # Prometheus 3.x
    "text/plain;version=1.0.0;escaping=dots",
    "text/plain;version=1.0.0;escaping=nonsense",
    "application/openmetrics-text;version=2.0.0;escaping=values",
    "application/json, text/plain;version=1.0.0",
])
def test_content_types_are_negotiated_as_prometheus_client_does(accept):
    _, content_type = choose_encoder(accept)
    assert negotiate(accept).content_type == content_type
