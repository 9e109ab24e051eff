"""promtool for the rule and dashboard tests: skipped when absent, except in CI."""

from __future__ import annotations

import os

import pytest

from tests.rules.promtool_runner import find_promtool


@pytest.fixture(scope="session")
def promtool() -> str:
    path = find_promtool()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is required in CI: apt-get install -y prometheus")
        pytest.skip("promtool not installed (Debian package 'prometheus'); in CI this fails")
    return path
