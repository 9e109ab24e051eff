"""Empty metric families for the rows of ``metrics.SPECS``, and samples added to them.

Families are prometheus-client's public ``GaugeMetricFamily`` and
``CounterMetricFamily``. The collectors of many series (markets, order books) add
samples directly with the label dicts the state built once per series: ``add_metric``
would build a new dict per sample, which on a 10k-series scrape costs several
milliseconds. The samples are the same either way (a counter's ``_total`` and
``_created``).
"""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.samples import Sample

from ..metrics import COUNTER, GAUGE, SPECS_BY_NAME
from ..state.model import CounterSeries


def family(name: str) -> Metric:
    """An empty family for the metric ``name`` of the table."""
    spec = SPECS_BY_NAME[name]
    if spec.kind == COUNTER:
        return CounterMetricFamily(spec.full_name, spec.help, labels=spec.labels)
    if spec.kind == GAUGE:
        return GaugeMetricFamily(spec.full_name, spec.help, labels=spec.labels)
    raise ValueError(f"{name} is an instrument, not collected")


def families(names: tuple[str, ...]) -> list[Metric]:
    return [family(name) for name in names]


def add_gauge(metric: Metric, labels: dict[str, str], value: float) -> None:
    metric.samples.append(Sample(metric.name, labels, value))


def add_counter(metric: Metric, labels: dict[str, str], value: float, created: float) -> None:
    """One counter series: its ``_total`` sample and its ``_created`` time."""
    metric.samples.append(Sample(metric.name + "_total", labels, value))
    metric.samples.append(Sample(metric.name + "_created", labels, created))


def add_series(metric: Metric, series: CounterSeries) -> None:
    add_counter(metric, series.labels, series.value, series.created)


class TableCollector:
    """Base of the collectors: ``describe`` names the families ``collect`` returns."""

    NAMES: tuple[str, ...] = ()

    def describe(self) -> list[Metric]:
        return families(self.NAMES)
