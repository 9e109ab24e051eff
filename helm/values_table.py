"""Generate the values table of the chart's README.md from values.yaml's "# --" comments.

helm-docs conventions: a "# -- text" comment right above a key documents it (following
"# " lines continue the text, "# @default -- text" replaces the shown default). A map
whose key carries a "# --" comment is documented as a whole; a map without one is a
section and its keys are documented one by one. Types come from values.schema.json.

    python helm/values_table.py           # rewrite the table in the chart's README.md
    python helm/values_table.py --check   # exit 1 when README.md is out of date
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CHART_DIR = Path(__file__).resolve().parent / "cryptomus-exporter"
TABLE_START = "<!-- values-table-start -->"
TABLE_END = "<!-- values-table-end -->"

_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?P<rest>.*)$")
_DOC_START = re.compile(r"^ *# -- ?(?P<text>.*)$")
_DOC_DEFAULT = re.compile(r"^ *# @default -- ?(?P<text>.*)$")
_DOC_MORE = re.compile(r"^ *# ?(?P<text>.*)$")
_SCHEMA_TYPE_NAMES = {"array": "list", "object": "object", "null": "null"}


class ValuesDocError(ValueError):
    """values.yaml breaks the documentation conventions; the message names the line."""


@dataclass(frozen=True)
class ValueDoc:
    key: str
    type: str
    default: str
    description: str


@dataclass(frozen=True)
class _Comment:
    description: str
    default: str | None


def _read_comment(line: str, pending: list[str] | None, default: str | None
                  ) -> tuple[list[str] | None, str | None]:
    """Fold one comment line into the pending description and @default."""
    if match := _DOC_DEFAULT.match(line):
        return pending, match["text"].strip()
    if match := _DOC_START.match(line):
        return [match["text"].strip()], default
    if pending is not None and (match := _DOC_MORE.match(line)):
        return [*pending, match["text"].strip()], default
    return pending, default


def parse_documented_keys(values_text: str) -> dict[str, _Comment]:
    """Dotted key -> its "# --" comment, for every documented key; raises for undocumented ones."""
    documented: dict[str, _Comment] = {}
    sections: list[tuple[int, str]] = []
    whole_map_indent: int | None = None
    pending: list[str] | None = None
    default: str | None = None
    for number, line in enumerate(values_text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            pending, default = (_read_comment(line, pending, default) if line.strip()
                                else (None, None))
            continue
        indent = len(line) - len(line.lstrip(" "))
        if whole_map_indent is not None and indent > whole_map_indent:
            continue
        whole_map_indent = None
        match = _KEY_LINE.match(line)
        if match is None:
            raise ValuesDocError(
                f"values.yaml:{number}: expected 'key: value' (write lists in flow style, "
                f"[a, b], so every key can be documented): {line.strip()}")
        while sections and sections[-1][0] >= indent:
            sections.pop()
        path = ".".join([name for _, name in sections] + [match["key"]])
        opens_map = match["rest"].split(" #")[0].strip() == ""
        if pending is not None:
            documented[path] = _Comment(" ".join(pending).strip(), default)
            whole_map_indent = indent if opens_map else None
        elif opens_map:
            sections.append((indent, match["key"]))
        else:
            raise ValuesDocError(f"values.yaml:{number}: key {path} has no '# --' comment")
        pending, default = None, None
    return documented


def _lookup(tree: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def _schema_node(schema: dict[str, Any], dotted: str) -> dict[str, Any]:
    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = _lookup(schema, node["$ref"].removeprefix("#/").replace("/", "."))
        return node

    node = resolve(schema)
    for part in dotted.split("."):
        node = resolve(node["properties"][part])
    return node


def _type_name(node: dict[str, Any]) -> str:
    types = node.get("type")
    if types is None:
        return "any"
    if isinstance(types, str):
        types = [types]
    return " or ".join(_SCHEMA_TYPE_NAMES.get(t, t) for t in types)


def value_docs(chart_dir: Path = CHART_DIR) -> list[ValueDoc]:
    values_text = (chart_dir / "values.yaml").read_text(encoding="utf-8")
    values = yaml.safe_load(values_text)
    schema = json.loads((chart_dir / "values.schema.json").read_text(encoding="utf-8"))
    docs = []
    for key, comment in parse_documented_keys(values_text).items():
        default = comment.default
        if default is None:
            default = f"`{json.dumps(_lookup(values, key), separators=(', ', ': '))}`"
        docs.append(ValueDoc(key, _type_name(_schema_node(schema, key)), default,
                             comment.description))
    return docs


def leaf_keys(values: Any, prefix: str = "") -> list[str]:
    """Every key whose value is not a non-empty map, as dotted paths."""
    keys = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            keys.extend(leaf_keys(value, f"{path}."))
        else:
            keys.append(path)
    return keys


def render_table(docs: list[ValueDoc]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    rows = ["| Key | Type | Default | Description |", "|-----|------|---------|-------------|"]
    rows += [f"| `{d.key}` | {cell(d.type)} | {cell(d.default)} | {cell(d.description)} |"
             for d in docs]
    return "\n".join(rows)


def replace_table(readme: str, table: str) -> str:
    start, end = readme.index(TABLE_START), readme.index(TABLE_END)
    return f"{readme[:start]}{TABLE_START}\n{table}\n{readme[end:]}"


def main(argv: list[str]) -> int:
    readme_path = CHART_DIR / "README.md"
    readme = readme_path.read_text(encoding="utf-8")
    updated = replace_table(readme, render_table(value_docs()))
    if "--check" in argv:
        if updated != readme:
            print(f"{readme_path} is out of date: run python helm/values_table.py", file=sys.stderr)
            return 1
        return 0
    readme_path.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
