"""examples/compose: what can be checked without Docker. The compose file names the three
services and only mounts files that exist; Prometheus' configuration passes `promtool
check config` as the container sees it (its mounts laid out in a temporary directory), with
the alert rules loaded and the exporter as its target; Grafana's provisioning points at the
stack's Prometheus and at the three dashboards."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path, PurePosixPath

import pytest
import yaml

from exporter import __version__

REPO_ROOT = Path(__file__).resolve().parents[2]
STACK = REPO_ROOT / "examples" / "compose"
DASHBOARD_UIDS = {"cryptomus-health", "cryptomus-markets", "cryptomus-account"}
JOB = "cryptomus-exporter"  # the job the rules and dashboards select


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((STACK / "compose.yaml").read_text(encoding="utf-8"))


def _bind_mounts(service: dict) -> dict[PurePosixPath, Path]:
    """Container path -> host path for the service's bind mounts (named volumes skipped)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[PurePosixPath(target)] = (STACK / source).resolve()
    return mounts


def _host_path(service: dict, container_path: str) -> Path:
    """Where a path inside the service's container comes from on this checkout."""
    path = PurePosixPath(container_path)
    for target, source in _bind_mounts(service).items():
        if path == target or target in path.parents:
            return source.joinpath(*path.relative_to(target).parts)
    raise AssertionError(f"{container_path} is not bind-mounted")


def _provisioning(compose: dict, kind: str) -> list[dict]:
    directory = _host_path(compose["services"]["grafana"], f"/etc/grafana/provisioning/{kind}")
    files = sorted(directory.glob("*.yml"))
    assert files, directory
    return [yaml.safe_load(path.read_text(encoding="utf-8")) for path in files]


def test_compose_names_the_three_services_and_mounts_what_exists(compose: dict) -> None:
    assert set(compose["services"]) == {"exporter", "prometheus", "grafana"}
    for name, service in compose["services"].items():
        assert "image" in service, name
        for target, source in _bind_mounts(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"
    volumes = {v.split(":")[0] for s in compose["services"].values() for v in s.get("volumes", [])
               if not v.startswith((".", "/"))}
    assert volumes == set(compose["volumes"])


def test_the_exporter_runs_the_demo_from_this_version_as_nobody(compose: dict) -> None:
    exporter = compose["services"]["exporter"]
    assert exporter["command"] == ["--demo"]
    assert exporter["image"] == f"ghcr.io/cryptomus-exporter/cryptomus-exporter:{__version__}"
    assert (STACK / exporter["build"]["context"]).resolve() == REPO_ROOT
    assert exporter["user"] == "65534:65534"
    assert exporter["read_only"] is True
    assert "9841:9841" in exporter["ports"]


def test_prometheus_config_passes_promtool_as_the_container_sees_it(
        compose: dict, promtool: str, tmp_path: Path) -> None:
    prometheus = compose["services"]["prometheus"]
    flags = dict(arg.removeprefix("--").partition("=")[::2] for arg in prometheus["command"])
    for target, source in _bind_mounts(prometheus).items():
        link = tmp_path.joinpath(*target.parts[1:])
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(source)
    config = tmp_path.joinpath(*PurePosixPath(flags["config.file"]).parts[1:])
    result = subprocess.run([promtool, "check", "config", str(config)], capture_output=True,
                            text=True, timeout=60, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "SUCCESS: 1 rule files found" in output, output
    assert "cryptomus-exporter.rules.yml" in output, output


def test_prometheus_scrapes_the_exporter_under_the_rules_job(compose: dict) -> None:
    prometheus = compose["services"]["prometheus"]
    config = yaml.safe_load(_host_path(prometheus, "/etc/prometheus/prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == JOB
    rules = (REPO_ROOT / "alerts" / "cryptomus-exporter.rules.yml").read_text()
    assert f'job="{JOB}"' in rules
    (targets,) = [c["targets"] for c in job["static_configs"]]
    host, port = targets[0].split(":")
    assert host in compose["services"]
    assert f"{port}:{port}" in compose["services"][host]["ports"]


def test_grafana_data_source_is_the_stacks_prometheus(compose: dict) -> None:
    (provisioning,) = _provisioning(compose, "datasources")
    assert provisioning["apiVersion"] == 1
    (source,) = provisioning["datasources"]
    assert source["type"] == "prometheus"
    assert source["isDefault"] is True
    assert source["url"] == "http://prometheus:9090"
    assert "9090:9090" in compose["services"]["prometheus"]["ports"]


def test_grafana_provisions_the_three_dashboards(compose: dict) -> None:
    grafana = compose["services"]["grafana"]
    (provisioning,) = _provisioning(compose, "dashboards")
    assert provisioning["apiVersion"] == 1
    (provider,) = provisioning["providers"]
    assert provider["type"] == "file"
    directory = _host_path(grafana, provider["options"]["path"])
    dashboards = {path.name: json.loads(path.read_text()) for path in directory.glob("*.json")}
    assert {d["uid"] for d in dashboards.values()} == DASHBOARD_UIDS
    # File provisioning does not fill grafana.com `__inputs`: panels must reach the data
    # source through the dashboard's own `datasource` variable. The only placeholder left
    # is that variable's initial value, which Grafana replaces with the default data
    # source when no data source of that name exists.
    for name, dashboard in dashboards.items():
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        without_initial = json.dumps({**dashboard, "__inputs": [], "templating": {"list": [
            {**v, "current": {}} if v["name"] == "datasource" else v
            for v in dashboard["templating"]["list"]]}})
        assert "${DS_" not in without_initial, name
        assert variables["datasource"]["type"] == "datasource", name
        assert variables["datasource"]["query"] == "prometheus", name
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert _host_path(grafana, home).is_file()
