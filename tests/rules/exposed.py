"""What the exporter exposes, per exporter.metrics.SPECS: sample names and their labels."""

from __future__ import annotations

from exporter.metrics import HISTOGRAM, SPECS, MetricSpec

# Target labels: job and instance added by Prometheus at scrape time; cluster optional, added
# by relabelling or by the ruler/querier in multi-cluster set-ups (the rules and dashboards
# keep it when present).
COMMON_LABELS = frozenset({"job", "instance", "cluster"})
PROMETHEUS_METRICS = {"up": frozenset()}  # series Prometheus itself records per target


def query_names(spec: MetricSpec) -> tuple[str, ...]:
    """The names a query may select for ``spec`` (``_created`` samples are not for queries)."""
    return tuple(name for name in spec.sample_names if not name.endswith("_created"))


def exposed_labels() -> dict[str, frozenset[str]]:
    """Every queryable sample name -> the labels it carries (besides job and instance)."""
    labels = {}
    for spec in SPECS:
        for name in query_names(spec):
            extra = {"le"} if spec.kind == HISTOGRAM and name.endswith("_bucket") else set()
            labels[name] = frozenset(spec.labels) | extra
    return labels | PROMETHEUS_METRICS
