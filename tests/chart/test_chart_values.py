"""values.yaml, values.schema.json and the exporter's settings agree; bad values are rejected."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from exporter import __version__
from exporter.settings import Settings
from tests.chart.chartlib import (
    ALL_FEATURES,
    CHART_DIR,
    CREDENTIALS,
    DEMO,
    EXISTING,
    FULLNAME,
    REPO_ROOT,
    decoded_secret_data,
    env_by_name,
    exporter_container,
    merged,
    render,
)
from tests.support import make_self_signed

SCHEMA = CHART_DIR / "values.schema.json"
VALUES = CHART_DIR / "values.yaml"
# Settings fields the chart sets from dedicated values rather than from config.*.
FIELDS_OUTSIDE_CONFIG = {
    "user_id": "credentials.userId / existingSecret",
    "api_key": "credentials.apiKeyMount=env",
    "api_key_file": "credentials.apiKeyMount=file",
    "listen_address": "containerPort",
    "web_config_file": "webConfig",
    "demo": "demo",
}
SECRET_PLACEHOLDER = "resolved-from-secret-9c1d"


def _load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _camel_to_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def test_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == __version__


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"demoo": True}, "additional properties 'demoo' not allowed"),
        ({"serviceMonitor": {"enabeld": True}}, "additional properties 'enabeld' not allowed"),
        ({"config": {"pingIntervall": 10}}, "additional properties 'pingIntervall' not allowed"),
        ({"probes": {"liveness": {"periodSecond": 5}}}, "'periodSecond' not allowed"),
        ({"resources": {"request": {"cpu": "1"}}}, "additional properties 'request' not allowed"),
        ({"networkPolicy": {"ingressFrom": [{"podselector": {}}]}}, "'podselector' not allowed"),
        ({"demo": "yes"}, "at '/demo': got string, want boolean"),
        ({"service": {"port": "9841"}}, "at '/service/port': got string, want integer"),
        ({"service": {"port": -1}}, "at '/service/port': minimum: got -1, want 1"),
        ({"containerPort": 70000}, "at '/containerPort': maximum: got 70,000, want 65,535"),
        ({"networkPolicy": {"egressPorts": [0]}}, "at '/networkPolicy/egressPorts/0'"),
        ({"config": {"pingInterval": 0}}, "at '/config/pingInterval'"),
        ({"config": {"depthScale": -1}}, "at '/config/depthScale'"),
        ({"config": {"depthBands": [1.5]}}, "at '/config/depthBands/0'"),
        ({"config": {"channels": ["tickers"]}}, "at '/config/channels/0'"),
        ({"config": {"markets": ["btc-usdt"]}}, "at '/config/markets/0'"),
        ({"config": {"wsUrl": "https://example.com/ws"}}, "at '/config/wsUrl'"),
        ({"config": {"logLevel": "verbose"}}, "at '/config/logLevel'"),
        ({"credentials": {"apiKeyMount": "volume"}}, "at '/credentials/apiKeyMount'"),
        ({"image": {"pullPolicy": "Sometimes"}}, "at '/image/pullPolicy'"),
        ({"image": {"digest": "latest"}}, "at '/image/digest'"),
        ({"webConfig": {"basicAuthUsers": {"prometheus": "plain-password"}}},
         "at '/webConfig/basicAuthUsers/prometheus'"),
        ({"podSecurityContext": {"runAsUser": 0}}, "at '/podSecurityContext/runAsUser'"),
        ({"serviceMonitor": {"interval": "30 seconds"}}, "at '/serviceMonitor/interval'"),
        ({"prometheusRule": {"job": 'a"b'}}, "at '/prometheusRule/job'"),
        ({"commonLabels": {"team": "two words"}}, "at '/commonLabels/team'"),
        ({"extraEnv": [{"value": "no name"}]}, "at '/extraEnv/0'"),
        ({"image": {"pullSecrets": ["x"]}}, "additional properties 'pullSecrets' not allowed"),
        ({"image": {"registry": "https://ghcr.io"}}, "at '/image/registry'"),
        ({"imagePullSecrets": [{"nam": "x"}]}, "at '/imagePullSecrets/0'"),
        ({"envFrom": [{"secretRef": {"name": "a"}, "secretref": {}}]}, "at '/envFrom/0'"),
        ({"extraVolumes": [{"name": "ca"}]}, "at '/extraVolumes/0'"),
        ({"extraVolumes": [{"name": "ca", "configMap": {}, "secret": {}}]}, "at '/extraVolumes/0'"),
        ({"extraVolumeMounts": [{"name": "ca", "mountPath": "etc"}]},
         "at '/extraVolumeMounts/0/mountPath'"),
        ({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone"}]},
         "at '/topologySpreadConstraints/0'"),
        ({"serviceMonitor": {"targetLabels": ["two words"]}},
         "at '/serviceMonitor/targetLabels/0'"),
        ({"serviceMonitor": {"sampleLimit": -1}}, "at '/serviceMonitor/sampleLimit'"),
        ({"serviceMonitor": {"labelLimit": "30"}}, "at '/serviceMonitor/labelLimit'"),
        ({"prometheusRule": {"disabled": {"CryptomusSpreadWide": "yes"}}},
         "at '/prometheusRule/disabled/CryptomusSpreadWide'"),
        ({"prometheusRule": {"additionalRuleLabels": {"team-name": "x"}}},
         "invalid propertyName 'team-name'"),
        ({"prometheusRule": {"extraGroups": [{"name": "g"}]}},
         "at '/prometheusRule/extraGroups/0'"),
        ({"prometheusRule": {"extraGroups": [{"name": "g", "rules": [{"expr": "up"}]}]}},
         "at '/prometheusRule/extraGroups/0/rules/0'"),
        ({"prometheusRule": {"extraGroups": [{"name": "g", "rules": [
            {"alert": "A", "expr": "up", "fore": "5m"}]}]}}, "'fore' not allowed"),
    ],
)
def test_schema_rejects_bad_values(
    chart: helm_python.Chart, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm_python.HelmValuesError) as excinfo:
        render(chart, merged(DEMO, values))
    assert message in str(excinfo.value)


def _object_nodes(node: Any, path: str = "") -> list[tuple[str, dict]]:
    found = []
    if isinstance(node, dict):
        if "properties" in node:
            found.append((path or "/", node))
        for key, child in node.items():
            found.extend(_object_nodes(child, f"{path}/{key}"))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found.extend(_object_nodes(child, f"{path}/{index}"))
    return found


def test_every_schema_object_with_properties_forbids_others() -> None:
    nodes = _object_nodes(_load_json(SCHEMA))
    assert len(nodes) > 20
    assert [path for path, node in nodes if node.get("additionalProperties") is not False] == []


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["definitions"][node["$ref"].removeprefix("#/definitions/")]
    return node


def _compare_keys(schema: dict, node: dict, values: dict, path: str) -> list[str]:
    node = _resolve(schema, node)
    if "properties" not in node or not values:  # an empty map is an optional object, e.g. affinity
        return []
    problems = [f"{path}{key}: in values.yaml, not in the schema"
                for key in values if key not in node["properties"]]
    problems += [f"{path}{key}: in the schema, not in values.yaml"
                 for key in node["properties"] if key not in values and key != "global"]
    for key, child in values.items():
        if isinstance(child, dict) and key in node["properties"]:
            problems += _compare_keys(schema, node["properties"][key], child, f"{path}{key}.")
    return problems


def test_schema_and_values_yaml_have_the_same_keys() -> None:
    schema = _load_json(SCHEMA)
    assert _compare_keys(schema, schema, yaml.safe_load(VALUES.read_text()), "") == []


def test_default_values_satisfy_the_schema(chart: helm_python.Chart) -> None:
    chart.validate_schema(yaml.safe_load(VALUES.read_text()))


def test_config_defaults_are_the_exporters() -> None:
    config = yaml.safe_load(VALUES.read_text())["config"]
    defaults = {_camel_to_snake(key): value for key, value in config.items()}
    fields = Settings.model_fields
    assert set(defaults) <= set(fields)
    for name, value in defaults.items():
        if (fields[name].json_schema_extra or {}).get("derived"):
            # Left unset, so the exporter derives it from what the user did set.
            assert value is None, f"config.{name}: derived by the exporter; chart sets {value!r}"
            continue
        expected = fields[name].default
        expected = list(expected) if isinstance(expected, tuple) else expected
        assert value == expected, f"config.{name}: chart default {value!r} != exporter {expected!r}"


def test_every_exporter_option_is_reachable_from_the_chart() -> None:
    config = yaml.safe_load(VALUES.read_text())["config"]
    reachable = {_camel_to_snake(key) for key in config} | set(FIELDS_OUTSIDE_CONFIG)
    missing = sorted(set(Settings.model_fields) - reachable)
    assert missing == [], f"exporter options without a chart value: {missing}"


def _flags() -> dict[str, str]:
    return {info.json_schema_extra["flag"]: name for name, info in Settings.model_fields.items()
            if info.json_schema_extra and info.json_schema_extra.get("flag")}


def _pod_environment(container: dict[str, Any], tmp_path: Path) -> dict[str, str]:
    """The container's CRYPTOMUS_* environment as the kubelet would resolve it."""
    environment = {}
    for name, entry in env_by_name(container).items():
        if not name.startswith("CRYPTOMUS_"):
            continue
        value = entry.get("value")
        if "valueFrom" in entry:  # a Secret's content, resolved by the kubelet
            value = SECRET_PLACEHOLDER
        if name == "CRYPTOMUS_API_KEY_FILE":  # the Secret volume, here a temporary file
            key_file = tmp_path / "api-key"
            key_file.write_text(SECRET_PLACEHOLDER)
            value = str(key_file)
        environment[name] = value
    return environment


# A user who sets only the idle timeout: the chart must not pin the defaults derived from it.
IDLE_TIMEOUT_ONLY = {**CREDENTIALS, "config": {"idleTimeout": 3}}


@pytest.mark.parametrize("values", [DEMO, CREDENTIALS, ALL_FEATURES, IDLE_TIMEOUT_ONLY],
                         ids=["demo", "credentials", "all-features", "idle-timeout-only"])
def test_settings_accept_the_rendered_environment_and_flags(
    chart: helm_python.Chart, values: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    container = exporter_container(render(chart, values))
    for name in list(os.environ):
        if name.startswith("CRYPTOMUS_"):
            monkeypatch.delenv(name)
    for name, value in _pod_environment(container, tmp_path).items():
        monkeypatch.setenv(name, value)
    flags = _flags()
    overrides: dict[str, Any] = {}
    for arg in container["args"]:
        flag, _, value = arg.partition("=")
        assert flag in flags, f"the chart passes {flag}, which the exporter does not know"
        overrides[flags[flag]] = value or True
    overrides.pop("web_config_file", None)  # a file in a Secret that only exists in the pod
    settings = Settings(**overrides)
    assert settings.listen_address == ":9841"
    assert settings.demo is bool(values.get("demo"))
    if not settings.demo:
        assert settings.secret_api_key() == SECRET_PLACEHOLDER
    if values is ALL_FEATURES:
        assert settings.markets == ("BTC_USDT", "ETH_USDT")
        assert settings.stale_after == 1000000
        assert settings.log_format == "json"
    if values is IDLE_TIMEOUT_ONLY:
        assert (settings.ping_interval, settings.pong_timeout, settings.idle_timeout) == (
            1.5, 1.5, 3)


def _mounted_web_config(docs: list[dict[str, Any]], tmp_path: Path) -> Path:
    """The rendered web config Secret and TLS Secret as files, paths moved under tmp_path."""
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    make_self_signed(tls_dir, "tls")  # tls.crt, tls.key as the Secret mounts them
    secret = next(doc for doc in docs if doc["metadata"]["name"] == f"{FULLNAME}-web-config")
    text = decoded_secret_data(secret)["web-config.yml"]
    web_config = tmp_path / "web-config.yml"
    web_config.write_text(text.replace("/etc/cryptomus-exporter/tls", str(tls_dir)))
    return web_config


@pytest.mark.parametrize(
    "values",
    [DEMO, CREDENTIALS, EXISTING, merged(CREDENTIALS, {"credentials": {"apiKeyMount": "env"}}),
     ALL_FEATURES],
    ids=["demo", "credentials-file", "existing-secret", "credentials-env", "all-features"],
)
def test_exporter_check_config_accepts_the_rendered_pod(
    chart: helm_python.Chart, values: dict[str, Any], tmp_path: Path
) -> None:
    """The real command line, as the image's ENTRYPOINT runs it, with the pod's args and env."""
    docs = render(chart, values)
    container = exporter_container(docs)
    args = list(container["args"])
    for index, arg in enumerate(args):
        if arg.startswith("--web.config.file="):
            args[index] = f"--web.config.file={_mounted_web_config(docs, tmp_path)}"
    environment = {"PATH": os.environ["PATH"], "HOME": str(tmp_path),
                   **_pod_environment(container, tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "exporter", *args, "check-config"], cwd=REPO_ROOT,
        env=environment, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("configuration OK"), result.stdout
    assert SECRET_PLACEHOLDER not in result.stdout + result.stderr
