"""Shared helpers for the Helm chart tests: paths, value scenarios, rendering."""

from __future__ import annotations

import base64
import copy
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import helm_python
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "helm" / "cryptomus-exporter"
RULES_FILE = REPO_ROOT / "alerts" / "cryptomus-exporter.rules.yml"
DASHBOARDS_DIR = REPO_ROOT / "dashboards"
CHART_RULES_FILE = CHART_DIR / "files" / "cryptomus-exporter.rules.yml"
CHART_DASHBOARDS_DIR = CHART_DIR / "files" / "dashboards"

RELEASE = "rel"
NAMESPACE = "ns"
FULLNAME = f"{RELEASE}-cryptomus-exporter"
# Offline schemas shipped by kubernetes-validate: an older and a newer supported release.
KUBE_VERSIONS = ("1.31", "1.33")
CUSTOM_RESOURCE_KINDS = ("ServiceMonitor", "PrometheusRule")

USER_ID = "user-4f1c"
# Distinctive, so a leak is found by plain substring search.
API_KEY = "test-api-key-Zq8vN3xK7pW2mR5t"
BCRYPT_HASH = "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"
EXISTING_SECRET = "cryptomus-credentials"

DEMO = {"demo": True}
CREDENTIALS = {"credentials": {"userId": USER_ID, "apiKey": API_KEY}}
EXISTING = {"credentials": {"existingSecret": EXISTING_SECRET}}
ALL_FEATURES: dict[str, Any] = {
    "fullnameOverride": "",
    "commonLabels": {"team": "trading"},
    "image": {
        "registry": "registry.example.com:5000",
        "digest": "sha256:" + "ab" * 32,
    },
    "imagePullSecrets": ["registry-login", {"name": "mirror-login"}],
    "credentials": {"userId": USER_ID, "apiKey": API_KEY, "apiKeyMount": "env"},
    "config": {
        "markets": ["BTC_USDT", "ETH_USDT"],
        "channels": ["lastprice", "ticker", "depth", "balance"],
        "depthScale": 2,
        "depthBands": [0.001, 0.05],
        "maxMarkets": 50,
        "pingInterval": 20,
        "pongTimeout": 5,
        "idleTimeout": 45,
        "staleAfter": 1000000,
        "logLevel": "debug",
        "logFormat": "json",
    },
    "webConfig": {
        "basicAuthUsers": {"prometheus": BCRYPT_HASH},
        "tls": {"enabled": True, "secretName": "exporter-tls", "minVersion": "TLS13"},
    },
    "serviceAccount": {"annotations": {"example.com/owner": "sre"}},
    "service": {"annotations": {"example.com/scrape": "yes"}, "labels": {"tier": "monitoring"}},
    "podAnnotations": {"example.com/team": "trading"},
    "podLabels": {"tier": "monitoring"},
    "prometheusScrapeAnnotations": {"enabled": True},
    "extraEnv": [{"name": "TZ", "value": "UTC"}],
    "envFrom": [{"secretRef": {"name": "proxy-env"}},
                {"configMapRef": {"name": "exporter-env", "optional": True}, "prefix": "X_"}],
    "extraVolumes": [{"name": "corporate-ca", "configMap": {"name": "corporate-ca"}}],
    "extraVolumeMounts": [{"name": "corporate-ca", "mountPath": "/etc/ssl/certs/corporate.pem",
                           "subPath": "ca.crt", "readOnly": True}],
    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                   "whenUnsatisfiable": "ScheduleAnyway"}],
    "extraArgs": ["--log.level=debug"],
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "monitoring",
                     "effect": "NoSchedule"}],
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64", "arm64"]}]}]}}},
    "priorityClassName": "monitoring",
    "serviceMonitor": {
        "enabled": True,
        "namespace": "monitoring",
        "additionalLabels": {"release": "kube-prometheus-stack"},
        "annotations": {"example.com/owner": "sre"},
        "interval": "15s",
        "scrapeTimeout": "5s",
        "relabelings": [{"action": "replace", "sourceLabels": ["__meta_kubernetes_pod_node_name"],
                         "targetLabel": "node"}],
        "metricRelabelings": [{"action": "drop", "sourceLabels": ["__name__"],
                               "regex": "cryptomus_ticker_.*"}],
        "basicAuth": {"secretName": "scrape-auth"},
        "tlsConfig": {"caSecretName": "exporter-ca"},
        "targetLabels": ["app.kubernetes.io/instance"],
        "sampleLimit": 20000,
        "labelLimit": 30,
    },
    "prometheusRule": {
        "enabled": True,
        "namespace": "monitoring",
        "additionalLabels": {"release": "kube-prometheus-stack"},
        "disabled": {"CryptomusSpreadWide": True, "CryptomusPingRttHigh": False},
        "additionalRuleLabels": {"team": "trading"},
        "extraGroups": [{"name": "cryptomus-exporter.custom", "interval": "1m", "rules": [{
            "alert": "CryptomusSpreadVeryWide",
            "expr": "instance_market:cryptomus_orderbook_spread_ratio:avg5m > 0.05",
            "for": "15m",
            "labels": {"severity": "warning"},
            "annotations": {"summary": "Cryptomus spread above 5 %"},
        }]}],
    },
    "dashboards": {"enabled": True, "namespace": "grafana",
                   "annotations": {"grafana_folder": "Cryptomus"}},
    "networkPolicy": {
        "enabled": True,
        "ingressFrom": [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": "monitoring"}}}],
        "dnsTo": [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": "kube-system"}}}],
    },
}
SCENARIOS = {
    "demo": DEMO,
    "credentials": CREDENTIALS,
    "existing-secret": EXISTING,
    "all-features": ALL_FEATURES,
}


def merged(*layers: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of value layers, later ones winning (like repeated helm -f)."""
    result: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(result.get(key), dict):
                result[key] = merged(result[key], value)
            else:
                result[key] = copy.deepcopy(value)
    return result


def render_texts(chart: helm_python.Chart, values: dict[str, Any]) -> dict[str, str]:
    return chart.render(copy.deepcopy(values), name=RELEASE, namespace=NAMESPACE)


def render(chart: helm_python.Chart, values: dict[str, Any]) -> list[dict[str, Any]]:
    """The rendered Kubernetes objects (NOTES.txt and empty templates left out)."""
    docs = []
    for path, text in render_texts(chart, values).items():
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


def only(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    matches = [doc for doc in docs if doc["kind"] == kind]
    assert len(matches) == 1, f"expected one {kind}, got {len(matches)}"
    return matches[0]


def kinds(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(doc["kind"] for doc in docs)


def exporter_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    containers = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["exporter"]
    return containers[0]


def env_by_name(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    names = [entry["name"] for entry in container["env"]]
    assert len(names) == len(set(names)), f"duplicate environment variables: {names}"
    return {entry["name"]: entry for entry in container["env"]}


def decoded_secret_data(secret: dict[str, Any]) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def load_values_table_module() -> ModuleType:
    """helm/values_table.py is a script, not a package module: load it by path."""
    name = "cryptomus_chart_values_table"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "helm" / "values_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
