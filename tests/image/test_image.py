"""The image the chart points at, built from the Dockerfile and run as Kubernetes runs it:
uid 65534, read-only root filesystem (no tmpfs either), --demo, then SIGTERM."""

from __future__ import annotations

import json
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from exporter import __version__
from tests.image import engine
from tests.lockfile import RUNTIME_LOCK, read_lock
from tests.support import free_port, wait_for

# The first test also waits for the session's build (and, on a new machine, the stand-in base).
pytestmark = [pytest.mark.image, pytest.mark.timeout(1200)]

OCI_LABELS = ("title", "description", "version", "revision", "created", "licenses", "source",
              "url", "documentation", "base.name")
STOP_GRACE_SECONDS = 10


def _python_in_image(image: engine.BuiltImage, code: str) -> str:
    return engine.run([*engine.PODMAN, "run", "--rm", *engine.ulimit_flags(), "--user",
                       "65534:65534", "--read-only", "--network", "none", "--entrypoint",
                       "python", image.name, "-c", code]).stdout


def test_labels_are_all_filled_in(image: engine.BuiltImage) -> None:
    labels = image.inspect()["Labels"]
    oci = {key.removeprefix("org.opencontainers.image."): value
           for key, value in labels.items() if key.startswith("org.opencontainers.image.")}
    assert set(OCI_LABELS) <= set(oci), sorted(set(OCI_LABELS) - set(oci))
    empty = {key: value for key, value in oci.items() if value.strip() in ("", "unknown")}
    assert not empty, f"empty labels: {empty}"
    assert oci["base.name"] == image.base
    assert oci["version"] == __version__
    assert oci["revision"] == image.build_args["VCS_REF"]
    assert oci["created"] == image.build_args["BUILD_DATE"]
    assert oci["licenses"] == "Apache-2.0"


def test_config_runs_as_nobody_with_a_python_healthcheck(image: engine.BuiltImage) -> None:
    config = image.inspect()
    assert config["User"] == "65534:65534"
    assert config["Config"]["Entrypoint"] == ["cryptomus-exporter"]
    healthcheck = config["Healthcheck"]["Test"]
    assert healthcheck[:3] == ["CMD", "python", "-c"], healthcheck


def test_no_pip_setuptools_or_wheel_at_run_time(image: engine.BuiltImage) -> None:
    found = json.loads(_python_in_image(image, (
        "import importlib.util, json, shutil\n"
        "tools = ('pip', 'setuptools', 'wheel')\n"
        "print(json.dumps({'modules': [t for t in tools if importlib.util.find_spec(t)],\n"
        "                  'commands': [t for t in ('pip', 'pip3') if shutil.which(t)]}))")))
    assert found == {"modules": [], "commands": []}


def test_installed_packages_are_exactly_the_lock(image: engine.BuiltImage) -> None:
    installed = json.loads(_python_in_image(image, (
        "import importlib.metadata as m, json\n"
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))")))
    locked = {pin.name: pin.version for pin in read_lock(RUNTIME_LOCK).values()}
    from packaging.utils import canonicalize_name

    installed = {canonicalize_name(name): version for name, version in installed.items()}
    assert installed.pop("cryptomus-exporter") == __version__
    assert installed == locked


def _scrape(port: int) -> str:
    response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    response.raise_for_status()
    return response.text


def test_demo_as_nobody_on_a_read_only_root_filesystem(image: engine.BuiltImage) -> None:
    port = free_port()
    name = f"cryptomus-exporter-test-{port}"
    engine.run([*engine.PODMAN, "run", "--detach", "--name", name, *engine.ulimit_flags(),
                "--user", "65534:65534", "--read-only", "--read-only-tmpfs=false",
                "--network", "host", "--env", f"CRYPTOMUS_LISTEN_ADDRESS=127.0.0.1:{port}",
                image.name, "--demo"])
    try:
        def populated() -> str | None:
            try:
                text = _scrape(port)
            except requests.RequestException:
                return None
            return text if "cryptomus_last_price{" in text else None

        text = wait_for(populated, timeout=60, interval=0.5, what="/metrics from the container")
        families = list(text_string_to_metric_families(text))
        samples = [sample for family in families for sample in family.samples]
        empty = [sample for sample in samples if any(v == "" for v in sample.labels.values())]
        assert not empty, empty[:5]
        assert {"version": __version__} in [s.labels for s in samples
                                            if s.name == "cryptomus_exporter_build_info"]
        assert len({family.name for family in families if family.name.startswith("cryptomus_")}
                   ) >= 30

        health = engine.run([*engine.PODMAN, "healthcheck", "run", name], check=False)
        assert health.returncode == 0, health.stdout + health.stderr

        started = time.monotonic()
        engine.run([*engine.PODMAN, "stop", "--time", str(STOP_GRACE_SECONDS), name],
                   timeout=STOP_GRACE_SECONDS + 30)
        stop_seconds = time.monotonic() - started
        state = json.loads(engine.run([*engine.PODMAN, "inspect", name]).stdout)[0]["State"]
        logs = engine.run([*engine.PODMAN, "logs", name]).stderr
        # 0, not 137: SIGTERM ended it, before podman's SIGKILL after the grace period.
        assert state["ExitCode"] == 0, (state, logs[-2000:])
        assert stop_seconds < STOP_GRACE_SECONDS, stop_seconds
        assert "Traceback" not in logs, logs[-2000:]
    finally:
        engine.run([*engine.PODMAN, "rm", "--force", name], check=False)
