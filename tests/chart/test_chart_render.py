"""The chart lints, renders valid Kubernetes objects and keeps its hard guarantees:
one hardened replica, the API key only ever inside a Secret."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml

from exporter import webconfig
from tests.chart.chartlib import (
    ALL_FEATURES,
    API_KEY,
    CHART_DIR,
    CREDENTIALS,
    CUSTOM_RESOURCE_KINDS,
    DEMO,
    EXISTING,
    EXISTING_SECRET,
    FULLNAME,
    KUBE_VERSIONS,
    NAMESPACE,
    SCENARIOS,
    USER_ID,
    decoded_secret_data,
    env_by_name,
    exporter_container,
    kinds,
    merged,
    only,
    render,
    render_texts,
)

WARNING = 2


@pytest.mark.parametrize("scenario", [None, *SCENARIOS])
def test_lint_is_clean_in_strict_mode(scenario: str | None) -> None:
    report = helm_python.lint(CHART_DIR, SCENARIOS.get(scenario), strict=True)
    assert report["total_charts_linted"] == 1
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= WARNING] == []


def test_kubernetes_validate_ships_the_versions_tested() -> None:
    shipped = {".".join(v.split(".")[:2]) for v in kubernetes_validate.utils.all_versions()}
    assert set(KUBE_VERSIONS) <= shipped


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_manifest_validates_offline(
    chart: helm_python.Chart, scenario: str, kube_version: str
) -> None:
    docs = render(chart, SCENARIOS[scenario])
    assert docs
    for doc in docs:
        if doc["kind"] in CUSTOM_RESOURCE_KINDS:
            continue  # no built-in schema: checked against the operator's models instead
        kubernetes_validate.validate(doc, kube_version, strict=True)


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("demo", ["Deployment", "Service", "ServiceAccount"]),
        ("credentials", ["Deployment", "Secret", "Service", "ServiceAccount"]),
        ("existing-secret", ["Deployment", "Service", "ServiceAccount"]),
        ("all-features", ["ConfigMap", "Deployment", "NetworkPolicy", "PrometheusRule",
                          "Secret", "Secret", "Service", "ServiceAccount", "ServiceMonitor"]),
    ],
)
def test_rendered_kinds(chart: helm_python.Chart, scenario: str, expected: list[str]) -> None:
    assert kinds(render(chart, SCENARIOS[scenario])) == expected


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_one_replica_recreated_never_rolled(chart: helm_python.Chart, scenario: str) -> None:
    spec = only(render(chart, SCENARIOS[scenario]), "Deployment")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_security_context_is_hardened(chart: helm_python.Chart, scenario: str) -> None:
    docs = render(chart, SCENARIOS[scenario])
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65534,
        "runAsGroup": 65534,
        "fsGroup": 65534,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    container = exporter_container(docs)
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["privileged"] is False
    assert context["runAsNonRoot"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert "add" not in context["capabilities"]
    tmp_mounts = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert len(tmp_mounts) == 1
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert "emptyDir" in volumes[tmp_mounts[0]["name"]]
    account = only(docs, "ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == account["metadata"]["name"]


def test_platform_assigned_ids_leave_the_hardening_in_place(chart: helm_python.Chart) -> None:
    values = merged(DEMO, {"podSecurityContext": {"runAsUser": None, "runAsGroup": None,
                                                  "fsGroup": None}})
    pod = only(render(chart, values), "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True,
                                      "seccompProfile": {"type": "RuntimeDefault"}}


def test_service_and_probes_use_the_named_metrics_port(chart: helm_python.Chart) -> None:
    docs = render(chart, CREDENTIALS)
    service = only(docs, "Service")
    assert service["spec"]["ports"] == [
        {"name": "http-metrics", "port": 9841, "targetPort": "http-metrics", "protocol": "TCP"}]
    selector = only(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == selector
    container = exporter_container(docs)
    assert container["ports"] == [
        {"name": "http-metrics", "containerPort": 9841, "protocol": "TCP"}]
    assert "--web.listen-address=:9841" in container["args"]
    probes = {name: container[f"{name}Probe"]["httpGet"] for name in ("startup", "liveness",
                                                                     "readiness")}
    assert probes["startup"]["path"] == "/healthz"
    assert probes["liveness"]["path"] == "/healthz"
    assert probes["readiness"]["path"] == "/readyz"
    assert {p["port"] for p in probes.values()} == {"http-metrics"}
    assert {p["scheme"] for p in probes.values()} == {"HTTP"}


def test_image_defaults_to_the_app_version(chart: helm_python.Chart) -> None:
    container = exporter_container(render(chart, DEMO))
    app_version = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["appVersion"]
    assert container["image"] == f"ghcr.io/cryptomus-exporter/cryptomus-exporter:{app_version}"
    pinned = exporter_container(render(chart, ALL_FEATURES))
    assert pinned["image"] == ("registry.example.com:5000/cryptomus-exporter/cryptomus-exporter"
                               "@sha256:" + "ab" * 32)
    values = merged(DEMO, {"image": {"registry": "", "repository": "mirror/exporter", "tag": "x"}})
    assert exporter_container(render(chart, values))["image"] == "mirror/exporter:x"


def test_demo_passes_the_flag_and_needs_no_credentials(chart: helm_python.Chart) -> None:
    docs = render(chart, DEMO)
    container = exporter_container(docs)
    assert "--demo" in container["args"]
    assert not [name for name in env_by_name(container) if name.startswith(
        ("CRYPTOMUS_API_KEY", "CRYPTOMUS_USER_ID"))]
    assert "Secret" not in kinds(docs)
    live = exporter_container(render(chart, CREDENTIALS))
    assert "--demo" not in live["args"]


def test_missing_credentials_stop_rendering_with_a_clear_message(chart: helm_python.Chart) -> None:
    with pytest.raises(helm_python.HelmRenderError, match=r"no credentials\..*existingSecret"):
        render(chart, {})
    with pytest.raises(helm_python.HelmRenderError, match=re.escape("credentials.userId is empty")):
        render(chart, {"credentials": {"apiKey": API_KEY}})
    with pytest.raises(helm_python.HelmRenderError, match=re.escape("credentials.apiKey is empty")):
        render(chart, {"credentials": {"userId": USER_ID}})


def test_api_key_is_mounted_as_a_file_by_default(chart: helm_python.Chart) -> None:
    docs = render(chart, CREDENTIALS)
    container = exporter_container(docs)
    env = env_by_name(container)
    assert "CRYPTOMUS_API_KEY" not in env
    assert env["CRYPTOMUS_API_KEY_FILE"] == {
        "name": "CRYPTOMUS_API_KEY_FILE",
        "value": "/etc/cryptomus-exporter/credentials/api-key"}
    secret_name = f"{FULLNAME}-credentials"
    assert env["CRYPTOMUS_USER_ID"]["valueFrom"] == {
        "secretKeyRef": {"name": secret_name, "key": "user-id"}}
    mount = next(m for m in container["volumeMounts"]
                 if m["mountPath"] == "/etc/cryptomus-exporter/credentials")
    assert mount["readOnly"] is True
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes[mount["name"]]["secret"] == {
        "secretName": secret_name,
        "defaultMode": 0o440,
        "items": [{"key": "api-key", "path": "api-key"}],
    }
    secret = only(docs, "Secret")
    assert secret["metadata"]["name"] == secret_name
    assert decoded_secret_data(secret) == {"user-id": USER_ID, "api-key": API_KEY}


def test_api_key_as_env_comes_from_a_secret_key_ref(chart: helm_python.Chart) -> None:
    values = merged(CREDENTIALS, {"credentials": {"apiKeyMount": "env", "apiKeyKey": "key"}})
    docs = render(chart, values)
    container = exporter_container(docs)
    env = env_by_name(container)
    assert env["CRYPTOMUS_API_KEY"] == {"name": "CRYPTOMUS_API_KEY", "valueFrom": {
        "secretKeyRef": {"name": f"{FULLNAME}-credentials", "key": "key"}}}
    assert "CRYPTOMUS_API_KEY_FILE" not in env
    assert not [m for m in container["volumeMounts"] if "credentials" in m["mountPath"]]
    assert decoded_secret_data(only(docs, "Secret"))["key"] == API_KEY


def test_existing_secret_renders_no_secret_and_is_referenced(chart: helm_python.Chart) -> None:
    values = merged(EXISTING, {"credentials": {"userIdKey": "uid", "apiKeyKey": "token"}})
    docs = render(chart, values)
    assert "Secret" not in kinds(docs)
    container = exporter_container(docs)
    env = env_by_name(container)
    assert env["CRYPTOMUS_USER_ID"]["valueFrom"] == {
        "secretKeyRef": {"name": EXISTING_SECRET, "key": "uid"}}
    template = only(docs, "Deployment")["spec"]["template"]
    volumes = [v for v in template["spec"]["volumes"] if "secret" in v]
    assert [v["secret"]["secretName"] for v in volumes] == [EXISTING_SECRET]
    assert volumes[0]["secret"]["items"] == [{"key": "token", "path": "api-key"}]
    assert "checksum/credentials" not in template["metadata"].get("annotations", {})


def test_existing_secret_with_a_plain_user_id(chart: helm_python.Chart) -> None:
    docs = render(chart, merged(EXISTING, {"credentials": {"userId": USER_ID}}))
    env = env_by_name(exporter_container(docs))
    assert env["CRYPTOMUS_USER_ID"] == {"name": "CRYPTOMUS_USER_ID", "value": USER_ID}
    assert "Secret" not in kinds(docs)


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in (*_strings(key), *_strings(value))]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return [str(node)]


@pytest.mark.parametrize("values", [CREDENTIALS, ALL_FEATURES, merged(
    CREDENTIALS, {"credentials": {"apiKeyMount": "env"}})], ids=["file", "all-features", "env"])
def test_api_key_never_leaves_its_secret(chart: helm_python.Chart, values: dict) -> None:
    encoded = base64.b64encode(API_KEY.encode()).decode()
    texts = render_texts(chart, values)
    for path, text in texts.items():
        assert API_KEY not in text, f"plain API key in {path}"
    docs = render(chart, values)
    holders = [doc for doc in docs if encoded in _strings(doc)]
    assert [(d["kind"], d["metadata"]["name"]) for d in holders] == [
        ("Secret", f"{FULLNAME}-credentials")]
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            assert encoded not in json.dumps(doc)
    for entry in exporter_container(docs)["env"]:
        assert entry.get("value") not in (API_KEY, encoded)


@pytest.mark.parametrize("name", ["CRYPTOMUS_API_KEY", "CRYPTOMUS_USER_ID", "CRYPTOMUS_DEMO"])
def test_extra_env_cannot_bypass_the_credentials_values(
    chart: helm_python.Chart, name: str
) -> None:
    values = merged(CREDENTIALS, {"extraEnv": [{"name": name, "value": "x"}]})
    with pytest.raises(helm_python.HelmRenderError, match=f"extraEnv must not set {name};"):
        render(chart, values)


def test_extra_env_may_reference_secrets(chart: helm_python.Chart) -> None:
    entry = {"name": "HTTPS_PROXY", "valueFrom": {"secretKeyRef": {"name": "proxy", "key": "url"}}}
    env = env_by_name(exporter_container(render(chart, merged(DEMO, {"extraEnv": [entry]}))))
    assert env["HTTPS_PROXY"] == entry


def test_all_features_wiring(chart: helm_python.Chart) -> None:
    docs = render(chart, ALL_FEATURES)
    deployment = only(docs, "Deployment")
    pod_template = deployment["spec"]["template"]
    pod = pod_template["spec"]
    container = exporter_container(docs)
    assert container["args"] == [
        "--web.listen-address=:9841",
        "--web.config.file=/etc/cryptomus-exporter/web/web-config.yml",
        "--log.level=debug",
    ]
    env = env_by_name(container)
    assert env["TZ"] == {"name": "TZ", "value": "UTC"}
    assert env["CRYPTOMUS_MARKETS"]["value"] == "BTC_USDT,ETH_USDT"
    assert env["CRYPTOMUS_DEPTH_BANDS"]["value"] == "0.001,0.05"
    assert env["CRYPTOMUS_STALE_AFTER"]["value"] == "1000000"  # no float exponent
    assert pod["nodeSelector"] == ALL_FEATURES["nodeSelector"]
    assert pod["tolerations"] == ALL_FEATURES["tolerations"]
    assert pod["affinity"] == ALL_FEATURES["affinity"]
    assert pod["priorityClassName"] == "monitoring"
    assert pod["imagePullSecrets"] == [{"name": "registry-login"}, {"name": "mirror-login"}]
    assert container["envFrom"] == ALL_FEATURES["envFrom"]
    assert pod["volumes"][-1] == ALL_FEATURES["extraVolumes"][0]
    assert container["volumeMounts"][-1] == ALL_FEATURES["extraVolumeMounts"][0]
    assert pod["topologySpreadConstraints"] == [{
        **ALL_FEATURES["topologySpreadConstraints"][0],
        "labelSelector": {"matchLabels": deployment["spec"]["selector"]["matchLabels"]}}]
    annotations = pod_template["metadata"]["annotations"]
    assert annotations["example.com/team"] == "trading"
    assert {key: annotations[key] for key in annotations if key.startswith("prometheus.io/")} == {
        "prometheus.io/scrape": "true", "prometheus.io/port": "9841",
        "prometheus.io/path": "/metrics", "prometheus.io/scheme": "https"}
    assert set(annotations) >= {"checksum/credentials", "checksum/web-config"}
    assert pod_template["metadata"]["labels"]["tier"] == "monitoring"
    for doc in docs:
        assert doc["metadata"]["labels"]["team"] == "trading", doc["kind"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS"
    assert only(docs, "ServiceAccount")["metadata"]["annotations"] == {"example.com/owner": "sre"}
    service = only(docs, "Service")
    assert service["metadata"]["annotations"] == {"example.com/scrape": "yes"}


def test_web_config_secret_is_mounted_and_matches_the_exporter_format(
    chart: helm_python.Chart,
) -> None:
    docs = render(chart, ALL_FEATURES)
    secrets = {s["metadata"]["name"]: s for s in docs if s["kind"] == "Secret"}
    web_config = yaml.safe_load(decoded_secret_data(secrets[f"{FULLNAME}-web-config"])[
        "web-config.yml"])
    assert set(web_config) <= webconfig.TOP_LEVEL_KEYS
    assert set(web_config["tls_server_config"]) <= webconfig.TLS_KEYS
    assert web_config["basic_auth_users"] == ALL_FEATURES["webConfig"]["basicAuthUsers"]
    assert web_config["tls_server_config"]["min_version"] == "TLS13"
    container = exporter_container(docs)
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "exporter-tls"
    tls_files = {key: web_config["tls_server_config"][key] for key in ("cert_file", "key_file")}
    assert tls_files == {"cert_file": f"{mounts['tls']}/tls.crt",
                         "key_file": f"{mounts['tls']}/tls.key"}
    assert volumes["web-config"]["secret"] == {
        "secretName": f"{FULLNAME}-web-config", "defaultMode": 0o440,
        "items": [{"key": "web-config.yml", "path": "web-config.yml"}]}
    assert f"--web.config.file={mounts['web-config']}/web-config.yml" in container["args"]


def test_existing_web_config_secret_is_used_as_is(chart: helm_python.Chart) -> None:
    values = merged(DEMO, {"webConfig": {"existingSecret": "my-web-config",
                                         "existingSecretKey": "config.yml"}})
    docs = render(chart, values)
    assert "Secret" not in kinds(docs)
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "web-config")
    assert volume["secret"]["secretName"] == "my-web-config"
    assert volume["secret"]["items"] == [{"key": "config.yml", "path": "web-config.yml"}]


def test_tls_without_a_certificate_is_refused(chart: helm_python.Chart) -> None:
    with pytest.raises(helm_python.HelmRenderError, match=re.escape("webConfig.tls.secretName")):
        render(chart, merged(DEMO, {"webConfig": {"tls": {"enabled": True}}}))


def test_basic_auth_with_a_service_monitor_needs_scrape_credentials(
    chart: helm_python.Chart,
) -> None:
    values = merged(DEMO, {"webConfig": {"basicAuthUsers": ALL_FEATURES["webConfig"][
        "basicAuthUsers"]}, "serviceMonitor": {"enabled": True}})
    expected = re.escape("needs serviceMonitor.basicAuth.secretName")
    with pytest.raises(helm_python.HelmRenderError, match=expected):
        render(chart, values)


def test_network_policy_allows_only_dns_https_and_the_metrics_port(
    chart: helm_python.Chart,
) -> None:
    docs = render(chart, ALL_FEATURES)
    policy = only(docs, "NetworkPolicy")["spec"]
    assert policy["podSelector"] == only(docs, "Deployment")["spec"]["selector"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"] == [{
        "from": ALL_FEATURES["networkPolicy"]["ingressFrom"],
        "ports": [{"port": "http-metrics", "protocol": "TCP"}]}]
    assert policy["egress"] == [
        {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
         "to": ALL_FEATURES["networkPolicy"]["dnsTo"]},
        {"ports": [{"port": 443, "protocol": "TCP"}]},
    ]


def test_notes_guide_the_user(chart: helm_python.Chart) -> None:
    demo_notes = render_texts(chart, DEMO)["cryptomus-exporter/templates/NOTES.txt"]
    assert "DEMO MODE" in demo_notes
    assert f"port-forward service/{FULLNAME} 9841:9841" in demo_notes
    assert f"--namespace {NAMESPACE}" in demo_notes
    live_notes = render_texts(chart, EXISTING)["cryptomus-exporter/templates/NOTES.txt"]
    assert EXISTING_SECRET in live_notes
    assert "DEMO MODE" not in live_notes


def test_topology_spread_keeps_its_own_label_selector(chart: helm_python.Chart) -> None:
    constraint = {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                  "whenUnsatisfiable": "DoNotSchedule",
                  "labelSelector": {"matchLabels": {"app": "other"}}}
    pod = only(render(chart, merged(DEMO, {"topologySpreadConstraints": [constraint]})),
               "Deployment")["spec"]["template"]["spec"]
    assert pod["topologySpreadConstraints"] == [constraint]


@pytest.mark.parametrize("name", ["tmp", "credentials", "web-config", "tls"])
def test_extra_volumes_cannot_replace_the_charts_own(chart: helm_python.Chart, name: str) -> None:
    values = merged(CREDENTIALS, {"extraVolumes": [{"name": name, "emptyDir": {}}]})
    with pytest.raises(helm_python.HelmRenderError, match=f"must not use the name \"{name}\""):
        render(chart, values)


def test_new_pod_knobs_are_absent_by_default(chart: helm_python.Chart) -> None:
    docs = render(chart, DEMO)
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    assert "imagePullSecrets" not in pod
    assert "topologySpreadConstraints" not in pod
    assert [volume["name"] for volume in pod["volumes"]] == ["tmp"]
    assert "envFrom" not in exporter_container(docs)


def test_umbrella_chart_globals_for_registry_and_pull_secrets(chart: helm_python.Chart) -> None:
    values = merged(DEMO, {"global": {"imageRegistry": "mirror.example.com",
                                      "imagePullSecrets": [{"name": "umbrella-login"}]},
                           "imagePullSecrets": ["own-login"]})
    docs = render(chart, values)
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "umbrella-login"}, {"name": "own-login"}]
    assert exporter_container(docs)["image"].startswith(
        "mirror.example.com/cryptomus-exporter/cryptomus-exporter:")
