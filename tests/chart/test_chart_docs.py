"""The chart README's values table documents every key of values.yaml."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.chart.chartlib import CHART_DIR, load_values_table_module

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
