"""The chart README: its values table documents every key of values.yaml, its examples render."""

from __future__ import annotations

import re

import helm_python
import kubernetes_validate
import pytest
import yaml

from tests.chart.chartlib import (
    CHART_DIR,
    DEMO,
    KUBE_VERSIONS,
    exporter_container,
    load_values_table_module,
    merged,
    only,
    render,
)

README = CHART_DIR / "README.md"
REGENERATE = "run: python helm/values_table.py"


def _table_keys() -> list[str]:
    module = load_values_table_module()
    text = README.read_text(encoding="utf-8")
    table = text[text.index(module.TABLE_START):text.index(module.TABLE_END)]
    return re.findall(r"^\| `([^`]+)` \|", table, re.MULTILINE)


def test_values_table_lists_every_key() -> None:
    module = load_values_table_module()
    listed = _table_keys()
    assert len(listed) == len(set(listed))
    leaves = module.leaf_keys(yaml.safe_load((CHART_DIR / "values.yaml").read_text()))
    undocumented = [key for key in leaves
                    if not any(key == row or key.startswith(f"{row}.") for row in listed)]
    assert undocumented == [], f"keys missing from the README values table ({REGENERATE})"


def test_values_table_is_up_to_date() -> None:
    module = load_values_table_module()
    readme = README.read_text(encoding="utf-8")
    assert module.replace_table(readme, module.render_table(module.value_docs())) == readme, (
        REGENERATE)


def test_an_undocumented_key_is_reported() -> None:
    module = load_values_table_module()
    text = "image:\n  # -- Repository.\n  repository: x\n  tag: \"\"\n"
    expected = re.escape("values.yaml:4: key image.tag has no '# --' comment")
    with pytest.raises(module.ValuesDocError, match=expected):
        module.parse_documented_keys(text)


def test_documentation_conventions_are_parsed() -> None:
    module = load_values_table_module()
    text = (
        "# Section comment, not documentation.\n"
        "section:\n"
        "  # -- First line\n"
        "  # continued.\n"
        "  key: 1\n"
        "# -- A map documented as a whole.\n"
        "# @default -- shown instead\n"
        "whole:\n"
        "  inner: {a: 1}\n"
        "  other: 2\n"
    )
    documented = module.parse_documented_keys(text)
    assert list(documented) == ["section.key", "whole"]
    assert documented["section.key"].description == "First line continued."
    assert documented["whole"].default == "shown instead"


def test_the_adapting_example_renders_and_validates(chart: helm_python.Chart) -> None:
    """The README's "Adapting without forking" values are valid and do what they say."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Adapting without forking"):]
    example = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.DOTALL)[1])
    docs = render(chart, merged(DEMO, example))
    for doc in docs:
        if doc["kind"] not in ("ServiceMonitor", "PrometheusRule"):
            kubernetes_validate.validate(doc, KUBE_VERSIONS[-1], strict=True)
    container = exporter_container(docs)
    assert container["image"].startswith("registry.example.com/cryptomus-exporter/")
    assert container["envFrom"] == example["envFrom"]
    groups = only(docs, "PrometheusRule")["spec"]["groups"]
    alerts = {rule["alert"]: rule for group in groups for rule in group["rules"]
              if "alert" in rule}
    assert "CryptomusSpreadWide" not in alerts
    assert alerts["CryptomusSpreadWideBtc"]["labels"] == {"severity": "warning"}
    assert alerts["CryptomusExporterDown"]["labels"] == {"severity": "critical",
                                                         "team": "trading"}
