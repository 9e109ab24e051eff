"""ServiceMonitor, PrometheusRule and the dashboards ConfigMap: valid for the Prometheus
Operator, and exactly the rules and dashboards kept in alerts/ and dashboards/."""

from __future__ import annotations

import json
import re
from typing import Any

import helm_python
import pytest
import yaml
from cloudcoil.models.prometheus_operator import v1 as monitoring_v1

from tests.chart.chartlib import (
    ALL_FEATURES,
    CHART_DASHBOARDS_DIR,
    CHART_RULES_FILE,
    DASHBOARDS_DIR,
    DEMO,
    FULLNAME,
    NAMESPACE,
    RULES_FILE,
    merged,
    only,
    render,
)

SYNC_HINT = "the chart's copy is stale: run helm/sync-assets.sh"
MONITORING_ON = {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True},
                 "dashboards": {"enabled": True}}


def _operator_round_trip(doc: dict[str, Any]) -> dict[str, Any]:
    model = getattr(monitoring_v1, doc["kind"]).model_validate(doc)
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


@pytest.mark.parametrize("values", [merged(DEMO, MONITORING_ON), ALL_FEATURES],
                         ids=["defaults", "all-features"])
@pytest.mark.parametrize("kind", ["ServiceMonitor", "PrometheusRule"])
def test_operator_objects_round_trip_through_the_crd_models(
    chart: helm_python.Chart, values: dict[str, Any], kind: str
) -> None:
    doc = only(render(chart, values), kind)
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    # Unknown (misspelled) keys are dropped by the model, so the dump would differ.
    assert _operator_round_trip(doc) == doc


def test_the_round_trip_catches_a_misspelled_key(chart: helm_python.Chart) -> None:
    doc = only(render(chart, merged(DEMO, MONITORING_ON)), "ServiceMonitor")
    doc["spec"]["endpoints"][0]["scrapeTimout"] = "10s"
    assert _operator_round_trip(doc) != doc


def test_service_monitor_selects_the_service_and_its_port(chart: helm_python.Chart) -> None:
    docs = render(chart, merged(DEMO, MONITORING_ON))
    monitor = only(docs, "ServiceMonitor")
    service = only(docs, "Service")
    assert monitor["metadata"]["namespace"] == NAMESPACE
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert "namespaceSelector" not in monitor["spec"]
    assert monitor["spec"]["endpoints"] == [{
        "port": service["spec"]["ports"][0]["name"], "path": "/metrics", "scheme": "http",
        "interval": "30s", "scrapeTimeout": "10s", "honorLabels": False}]
    # job = the Service's app.kubernetes.io/name label = what the rules select on.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "cryptomus-exporter"


def test_service_monitor_wiring_with_tls_and_basic_auth(chart: helm_python.Chart) -> None:
    monitor = only(render(chart, ALL_FEATURES), "ServiceMonitor")
    assert monitor["metadata"]["namespace"] == "monitoring"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["scheme"] == "https"
    assert endpoint["basicAuth"] == {
        "username": {"name": "scrape-auth", "key": "username"},
        "password": {"name": "scrape-auth", "key": "password"}}
    assert endpoint["tlsConfig"] == {
        "serverName": f"{FULLNAME}.{NAMESPACE}.svc",
        "ca": {"secret": {"name": "exporter-ca", "key": "ca.crt"}}}
    assert endpoint["metricRelabelings"] == ALL_FEATURES["serviceMonitor"]["metricRelabelings"]


def test_chart_rules_file_is_a_copy_of_alerts() -> None:
    assert RULES_FILE.is_file(), f"{RULES_FILE} is missing"
    assert CHART_RULES_FILE.read_bytes() == RULES_FILE.read_bytes(), SYNC_HINT


def _rule_file_groups() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))["groups"]
    assert groups
    return groups


def _alerts(groups: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


def test_prometheus_rule_groups_are_the_alert_file_groups(chart: helm_python.Chart) -> None:
    placement = {key: value for key, value in ALL_FEATURES["prometheusRule"].items()
                 if key in ("enabled", "namespace", "additionalLabels")}
    rule = only(render(chart, merged(DEMO, {"prometheusRule": placement})), "PrometheusRule")
    assert rule["spec"]["groups"] == _rule_file_groups(), SYNC_HINT
    assert rule["metadata"]["namespace"] == "monitoring"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_prometheus_rule_disable_label_and_extend(chart: helm_python.Chart) -> None:
    settings = ALL_FEATURES["prometheusRule"]
    groups = only(render(chart, ALL_FEATURES), "PrometheusRule")["spec"]["groups"]
    expected = _rule_file_groups()
    assert [group["name"] for group in groups] == [
        *(group["name"] for group in expected), "cryptomus-exporter.custom"]
    assert groups[-1] == settings["extraGroups"][0]  # appended verbatim, no extra labels
    original = _alerts(expected)
    rendered = _alerts(groups[:-1])
    assert set(rendered) == set(original) - {"CryptomusSpreadWide"}
    assert "CryptomusPingRttHigh" in rendered  # false keeps an alert
    for name, rule in rendered.items():
        assert rule["labels"] == {**original[name]["labels"], "team": "trading"}, name
        assert {k: v for k, v in rule.items() if k != "labels"} == {
            k: v for k, v in original[name].items() if k != "labels"}, name
    recording = [rule for group in groups[:-1] for rule in group["rules"] if "record" in rule]
    assert recording
    assert all("labels" not in rule for rule in recording)


def test_additional_rule_labels_keep_each_alerts_severity(chart: helm_python.Chart) -> None:
    values = merged(DEMO, {"prometheusRule": {
        "enabled": True, "additionalRuleLabels": {"severity": "page", "team": "sre"}}})
    rendered = _alerts(only(render(chart, values), "PrometheusRule")["spec"]["groups"])
    for name, rule in _alerts(_rule_file_groups()).items():
        assert rendered[name]["labels"] == {"severity": rule["labels"]["severity"],
                                            "team": "sre"}


def test_disabling_every_alert_of_a_group_drops_the_group(chart: helm_python.Chart) -> None:
    disabled = dict.fromkeys(_alerts(_rule_file_groups()), True)
    values = merged(DEMO, {"prometheusRule": {"enabled": True, "disabled": disabled}})
    groups = only(render(chart, values), "PrometheusRule")["spec"]["groups"]
    assert [group["name"] for group in groups] == ["cryptomus-exporter.recording"]


def test_disabling_an_unknown_alert_is_refused(chart: helm_python.Chart) -> None:
    values = merged(DEMO, {"prometheusRule": {"enabled": True,
                                              "disabled": {"CryptomusSpreadWyde": True}}})
    with pytest.raises(helm_python.HelmRenderError,
                       match=re.escape("prometheusRule.disabled names CryptomusSpreadWyde, "
                                       "which is not one of the chart's alerts "
                                       "(CryptomusExporterDown, ")):
        render(chart, values)


def test_service_monitor_limits_and_target_labels(chart: helm_python.Chart) -> None:
    spec = only(render(chart, ALL_FEATURES), "ServiceMonitor")["spec"]
    assert spec["targetLabels"] == ["app.kubernetes.io/instance"]
    assert (spec["sampleLimit"], spec["labelLimit"]) == (20000, 30)
    default = only(render(chart, merged(DEMO, MONITORING_ON)), "ServiceMonitor")["spec"]
    assert not {"targetLabels", "sampleLimit", "labelLimit"} & set(default)


def test_prometheus_rule_job_override_rewrites_every_selector(chart: helm_python.Chart) -> None:
    text = RULES_FILE.read_text(encoding="utf-8")
    selectors = text.count('job="cryptomus-exporter"')
    assert selectors > 0
    values = merged(DEMO, {"prometheusRule": {"enabled": True, "job": "kubernetes-pods"}})
    groups = only(render(chart, values), "PrometheusRule")["spec"]["groups"]
    rewritten = text.replace('job="cryptomus-exporter"', 'job="kubernetes-pods"')
    assert groups == yaml.safe_load(rewritten)["groups"]
    expressions = " ".join(rule["expr"] for group in groups for rule in group["rules"])
    assert 'job="cryptomus-exporter"' not in expressions
    assert 'job="kubernetes-pods"' in expressions


def _dashboard_files() -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8")
            for path in sorted(DASHBOARDS_DIR.glob("*.json"))}


def test_chart_dashboards_are_copies_of_dashboards() -> None:
    expected = {path.name: path.read_bytes() for path in DASHBOARDS_DIR.glob("*.json")}
    assert expected, f"no dashboards in {DASHBOARDS_DIR}"
    copies = {path.name: path.read_bytes() for path in CHART_DASHBOARDS_DIR.glob("*.json")}
    assert sorted(copies) == sorted(expected), SYNC_HINT
    for name, content in expected.items():
        assert copies[name] == content, f"{name}: {SYNC_HINT}"


def test_dashboards_config_map_holds_every_dashboard_verbatim(chart: helm_python.Chart) -> None:
    config_map = only(render(chart, ALL_FEATURES), "ConfigMap")
    assert config_map["metadata"]["name"] == f"{FULLNAME}-dashboards"
    assert config_map["metadata"]["namespace"] == "grafana"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Cryptomus"}
    assert config_map["data"] == _dashboard_files(), SYNC_HINT
    for name, text in config_map["data"].items():
        assert isinstance(json.loads(text), dict), name


def test_dashboards_sidecar_label_is_configurable(chart: helm_python.Chart) -> None:
    values = merged(DEMO, {"dashboards": {"enabled": True, "label": "grafana.io/dashboard",
                                          "labelValue": "cryptomus"}})
    labels = only(render(chart, values), "ConfigMap")["metadata"]["labels"]
    assert labels["grafana.io/dashboard"] == "cryptomus"
    assert "grafana_dashboard" not in labels


def test_monitoring_objects_are_off_by_default(chart: helm_python.Chart) -> None:
    kinds = {doc["kind"] for doc in render(chart, DEMO)}
    assert kinds.isdisjoint({"ServiceMonitor", "PrometheusRule", "ConfigMap", "NetworkPolicy"})
