"""Fixtures for the Helm chart tests (helm-python-sdk renders offline; no cluster)."""

from collections.abc import Iterator

import helm_python
import pytest

from tests.chart.chartlib import CHART_DIR


@pytest.fixture(scope="session")
def chart() -> Iterator[helm_python.Chart]:
    loaded = helm_python.Chart.load(CHART_DIR)
    yield loaded
    loaded.close()
