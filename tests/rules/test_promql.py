"""The lexical PromQL helpers the contract tests rely on."""

from __future__ import annotations

from tests.rules.promql import (
    Matcher,
    Selector,
    blank_strings,
    grouping_labels,
    label_replace_targets,
    legend_labels,
    metric_names,
    recording_names,
    selectors,
)

EXPR = (
    'histogram_quantile(0.99, sum by (job, le) (rate(cryptomus_a_bucket{job="x", '
    'code!~"2..", q="{not}a_selector"}[5m:1m]))) > on (job) group_left () '
    'level:cryptomus_b:avg5m offset 15m or on () label_replace(vector(0), "reason", "none", "", "")'
    " and cryptomus_c[$__rate_interval] > inf"
)


def test_selectors_skip_functions_keywords_labels_strings_and_durations():
    assert selectors(EXPR) == [
        Selector("cryptomus_a_bucket", (Matcher("job", "=", "x"), Matcher("code", "!~", "2.."),
                                        Matcher("q", "=", "{not}a_selector"))),
        Selector("level:cryptomus_b:avg5m", ()),
        Selector("cryptomus_c", ()),
    ]


def test_names_and_labels():
    assert metric_names(EXPR) == {"cryptomus_a_bucket", "cryptomus_c"}
    assert recording_names(EXPR) == {"level:cryptomus_b:avg5m"}
    assert grouping_labels(EXPR) == {"job", "le"}
    assert label_replace_targets(EXPR) == {"reason"}
    assert legend_labels("{{market}} {{ side }} ±{{band}}") == {"market", "side", "band"}


def test_blank_strings_keeps_offsets():
    assert blank_strings('a{b="c}d"}') == 'a{b="   "}'
