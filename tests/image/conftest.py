"""The container image, built once per session from the repository's Dockerfile.

Skipped with the reason when buildah/podman/runc (Debian packages) or root are missing,
except in CI, where that is a failure (.ci/run installs them)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from exporter import __version__
from tests.image import engine

IMAGE_NAME = "localhost/cryptomus-exporter:test"
BUILD_SUMMARY = pytest.StashKey[str]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    """The build's time and the image's size, in the CI log."""
    if BUILD_SUMMARY in config.stash:
        terminalreporter.write_sep("-", "container image")
        terminalreporter.write_line(config.stash[BUILD_SUMMARY])


def _vcs_ref() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=engine.REPO_ROOT, text=True,
                              capture_output=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unversioned"


@pytest.fixture(scope="session")
def image(pytestconfig: pytest.Config) -> Iterator[engine.BuiltImage]:
    missing = engine.missing_tools()
    if missing:
        reason = (f"image tests need {', '.join(missing)} (apt-get install -y buildah podman "
                  "runc debootstrap, as root)")
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; required in CI")
        pytest.skip(f"{reason}; in CI this fails")
    base, origin = engine.ensure_base_image()
    built = engine.build(IMAGE_NAME, base, origin, {
        "VERSION": __version__,
        "VCS_REF": _vcs_ref(),
        "BUILD_DATE": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    })
    pytestconfig.stash[BUILD_SUMMARY] = (
        f"{IMAGE_NAME} built in {built.build_seconds:.0f} s, {built.size_bytes() / 1e6:.0f} MB,"
        f" base {base} ({origin})")
    yield built
    engine.remove_image(IMAGE_NAME)
