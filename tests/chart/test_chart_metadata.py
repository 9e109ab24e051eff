"""Chart.yaml metadata for Artifact Hub: icon, links, images and changes annotations."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import helm_python
import pytest
import yaml

from tests.chart.chartlib import CHART_DIR, DEMO, REPO_ROOT, exporter_container, render

CHART = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text(encoding="utf-8"))
REPO_URL = CHART["home"]
RAW_MAIN = REPO_URL.replace("https://github.com/", "https://raw.githubusercontent.com/") + "/main/"
# https://artifacthub.io/docs/topics/annotations/helm/
CHANGE_KINDS = {"added", "changed", "deprecated", "removed", "fixed", "security"}


def _annotation(name: str) -> Any:
    """Artifact Hub's list annotations are YAML documents inside strings."""
    text = CHART["annotations"][f"artifacthub.io/{name}"]
    assert isinstance(text, str), f"artifacthub.io/{name} must be a string holding YAML"
    return yaml.safe_load(text)


def _repo_path(url: str, prefix: str) -> str:
    assert url.startswith(prefix), url
    return url.removeprefix(prefix).split("#")[0]


def test_icon_is_a_file_of_this_repository() -> None:
    path = REPO_ROOT / _repo_path(CHART["icon"], RAW_MAIN)
    assert path.is_file(), f"{CHART['icon']} points at {path}, which does not exist"
    assert path.read_text(encoding="utf-8").lstrip().startswith("<svg")


def test_links_are_named_https_urls_into_the_repository() -> None:
    links = _annotation("links")
    assert {link["name"] for link in links} >= {"Source"}
    for link in links:
        assert set(link) == {"name", "url"}
        assert urlparse(link["url"]).scheme == "https"
        if link["url"] != REPO_URL:
            relative = _repo_path(link["url"], REPO_URL + "/").split("/", 2)[2]  # blob|tree/main/
            assert (REPO_ROOT / relative).exists(), link["url"]


def test_images_name_the_image_the_chart_deploys(chart: helm_python.Chart) -> None:
    images = _annotation("images")
    deployed = exporter_container(render(chart, DEMO))["image"]
    assert [image["image"] for image in images] == [deployed]
    assert images[0]["image"].endswith(f":{CHART['appVersion']}")
    assert set(images[0]["platforms"]) == {"linux/amd64", "linux/arm64"}


@pytest.mark.parametrize("change", _annotation("changes"), ids=lambda c: c["description"][:40])
def test_changes_have_an_artifact_hub_kind_and_a_description(change: dict[str, Any]) -> None:
    assert set(change) <= {"kind", "description", "links"}
    assert change["kind"] in CHANGE_KINDS
    assert change["description"].strip()
