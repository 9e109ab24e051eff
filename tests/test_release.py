"""The release machinery that cannot run here: GitHub workflows validated against their
schema (check-jsonschema, offline) and read for what the release promises, and the tag
check the release runs first (.github/scripts/check_versions.py) on real and altered
copies of the repository's files."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from exporter import __version__

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO_ROOT / ".github" / "workflows"
SCRIPT = REPO_ROOT / ".github" / "scripts" / "check_versions.py"
VERSION_SOURCES = ("exporter/__init__.py", "Dockerfile", "helm/cryptomus-exporter/Chart.yaml",
                   "CHANGELOG.md")


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_versions", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_versions = _load_script()


def _workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))


def _steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def _step_using(workflow: dict, action: str) -> dict:
    found = [step for step in _steps(workflow) if step.get("uses", "").startswith(action + "@")]
    assert len(found) == 1, f"{action}: {len(found)} steps"
    return found[0]


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    for source in VERSION_SOURCES:
        (tmp_path / source).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / source, tmp_path / source)
    return tmp_path


def _edit(path: Path, pattern: str, replacement: str) -> None:
    text, count = re.subn(pattern, replacement, path.read_text(), count=1, flags=re.MULTILINE)
    assert count == 1, pattern
    path.write_text(text)


# --- workflows ---------------------------------------------------------------------------

def test_workflows_match_github_schema() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert [f.name for f in files] == ["ci.yml", "release.yml"]
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
         *map(str, files)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_action_is_pinned_at_least_to_a_major_version() -> None:
    for name in ("ci.yml", "release.yml"):
        for step in _steps(_workflow(name)):
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@(v\d+(\.\d+){0,2}|[0-9a-f]{40})",
                                    step["uses"]), step["uses"]


def test_ci_runs_what_ci_run_runs() -> None:
    workflow = _workflow("ci.yml")
    # "on" is YAML 1.1's true: PyYAML reads the key as a boolean.
    assert {"push", "pull_request"} <= set(workflow[True])
    test_job = workflow["jobs"]["test"]
    assert test_job["container"]["image"].startswith("python:3.11")
    assert "--privileged" in test_job["container"]["options"]  # buildah/podman inside
    assert [step["run"] for step in test_job["steps"] if "run" in step][-1] == ".ci/run"
    lint = " ".join(step.get("run", "") for step in workflow["jobs"]["lint"]["steps"])
    assert "ruff check ." in lint
    assert "check-jsonschema --builtin-schema vendor.github-workflows" in lint


def test_release_publishes_a_multi_arch_image_with_sbom_and_provenance() -> None:
    workflow = _workflow("release.yml")
    assert workflow[True] == {"push": {"tags": ["v*"]}}
    build = _step_using(workflow, "docker/build-push-action")["with"]
    assert set(build["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert build["push"] is True
    assert build["sbom"] is True
    assert build["provenance"].startswith("mode=")
    assert "VERSION=${{ needs.versions.outputs.version }}" in build["build-args"]
    assert workflow["env"]["IMAGE"] == "ghcr.io/${{ github.repository }}"
    assert workflow["jobs"]["image"]["needs"] == "versions"
    assert workflow["jobs"]["image"]["permissions"]["packages"] == "write"


def test_release_checks_versions_before_publishing_and_pushes_the_chart_as_oci() -> None:
    workflow = _workflow("release.yml")
    check = [step for step in workflow["jobs"]["versions"]["steps"] if step.get("id") == "check"]
    assert check and ".github/scripts/check_versions.py \"$GITHUB_REF_NAME\"" in check[0]["run"]
    chart = " ".join(step.get("run", "") for step in workflow["jobs"]["chart"]["steps"])
    assert "helm package helm/cryptomus-exporter" in chart
    assert 'helm push "dist/cryptomus-exporter-${VERSION}.tgz" "$CHART_REPOSITORY"' in chart
    assert workflow["env"]["CHART_REPOSITORY"].startswith("oci://ghcr.io/")
    for job in ("image", "chart", "github-release"):
        assert "versions" in workflow["jobs"][job]["needs"]


def test_the_chart_points_at_the_image_the_release_publishes() -> None:
    values = yaml.safe_load((REPO_ROOT / "helm/cryptomus-exporter/values.yaml").read_text())
    image = values["image"]
    assert f"{image['registry']}/{image['repository']}" == (
        "ghcr.io/cryptomus-exporter/cryptomus-exporter")
    home = yaml.safe_load((REPO_ROOT / "helm/cryptomus-exporter/Chart.yaml").read_text())["home"]
    assert home == "https://github.com/cryptomus-exporter/cryptomus-exporter"  # github.repository


# --- check_versions ----------------------------------------------------------------------

def test_the_repository_agrees_with_its_own_version_tag() -> None:
    assert check_versions.mismatches(f"v{__version__}") == []
    assert check_versions.mismatches(f"refs/tags/v{__version__}") == []


@pytest.mark.parametrize("tag", ["0.1.0", "v0.1", "v01.2.3", "v1.2.3+build.5", "v1.2.3-",
                                 "release-1.2.3", ""])
def test_malformed_tags_are_refused(tag: str) -> None:
    with pytest.raises(check_versions.VersionError, match="is not v<major>"):
        check_versions.version_from_tag(tag)


def test_pre_release_tags_are_accepted() -> None:
    assert check_versions.version_from_tag("v1.2.3-rc.1") == "1.2.3-rc.1"


def test_another_version_lists_every_place_that_disagrees() -> None:
    problems = check_versions.mismatches("v9.8.7")
    assert len(problems) == 5, problems
    for where in ("__version__", "Dockerfile ARG VERSION", "Chart.yaml version",
                  "Chart.yaml appVersion", "CHANGELOG.md"):
        assert any(where in problem for problem in problems), (where, problems)


def test_a_chart_app_version_left_behind_is_caught(repo_copy: Path) -> None:
    _edit(repo_copy / "helm/cryptomus-exporter/Chart.yaml", r"^appVersion: .*$",
          'appVersion: "0.0.9"')
    assert check_versions.mismatches(f"v{__version__}", repo_copy) == [
        f"Chart.yaml appVersion is '0.0.9', the tag says '{__version__}'"]


def test_a_release_needs_a_dated_changelog_section(repo_copy: Path) -> None:
    _edit(repo_copy / "CHANGELOG.md", rf"^## \[{re.escape(__version__)}\] - .*$",
          f"## [{__version__}] - unreleased")
    assert check_versions.mismatches(f"v{__version__}", repo_copy) == [
        f"CHANGELOG.md has no section '## [{__version__}] - YYYY-MM-DD'"]


def test_a_bumped_release_passes_and_writes_its_notes(repo_copy: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    _edit(repo_copy / "exporter/__init__.py", r"^__version__ = .*$", '__version__ = "1.0.0"')
    _edit(repo_copy / "Dockerfile", r"^ARG VERSION=.*$", "ARG VERSION=1.0.0")
    _edit(repo_copy / "helm/cryptomus-exporter/Chart.yaml", r"^version: .*$", "version: 1.0.0")
    _edit(repo_copy / "helm/cryptomus-exporter/Chart.yaml", r"^appVersion: .*$",
          'appVersion: "1.0.0"')
    _edit(repo_copy / "CHANGELOG.md", rf"^## \[{re.escape(__version__)}\]",
          f"## [1.0.0] - 2027-01-02\n\n### Added\n- Everything.\n\n## [{__version__}]")
    notes = tmp_path / "notes.md"
    status = check_versions.main(["v1.0.0", "--notes", str(notes), "--root", str(repo_copy)])
    assert status == 0
    assert capsys.readouterr().out == "version=1.0.0\n"
    assert notes.read_text() == "### Added\n- Everything.\n"


def test_a_mismatch_exits_1_naming_it_on_stderr(capsys: pytest.CaptureFixture) -> None:
    assert check_versions.main(["v9.8.7"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "check_versions: Chart.yaml version is" in captured.err
