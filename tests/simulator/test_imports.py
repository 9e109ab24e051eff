"""The simulator's modules form no import circle, and only the package entry points
import the composing ``simulator`` module (its parts get what they need at
construction). Every import counts, ``TYPE_CHECKING`` and function-level ones too."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import exporter.simulator

PACKAGE = Path(exporter.simulator.__file__).parent
ENTRY_POINTS = {"__init__", "__main__", "cli", "simulator"}


def local_imports(path: Path) -> set[str]:
    """Names of the sibling modules ``path`` imports (``from . import x``,
    ``from .x import y``, ``from exporter.simulator.x import y``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 1 or module.startswith("exporter.simulator"):
                base = module.removeprefix("exporter.simulator").lstrip(".")
                if base:
                    found.add(base.split(".")[0])
                else:  # from . import a, b
                    found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("exporter.simulator."):
                    found.add(alias.name.split(".")[2])
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {path.stem: path for path in PACKAGE.glob("*.py")}
    return {name: local_imports(path) & set(modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path (first module repeated at the end), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = "visiting"
        stack.append(name)
        for target in sorted(graph[name]):
            if state.get(target) == "visiting":
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[name] = "done"
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name)):
            return cycle
    return None


def test_the_cycle_finder_finds_circles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    assert local_imports(Path(__file__)) == set()


def test_the_simulator_modules_import_no_circle() -> None:
    graph = import_graph()
    assert {"simulator", "hub", "dispatch", "rest", "control"} <= set(graph)
    assert graph["simulator"] >= {"hub", "dispatch", "rest", "control", "server"}
    assert find_cycle(graph) is None, f"import circle: {' -> '.join(find_cycle(graph) or [])}"


def test_only_entry_points_import_the_composing_module() -> None:
    importers = {name for name, imports in import_graph().items() if "simulator" in imports}
    assert importers <= ENTRY_POINTS - {"simulator"}, importers


def test_the_cli_module_loads_no_server_code() -> None:
    """``exporter/cli.py`` imports the simulate CLI on every run: it must stay light."""
    probe = (
        "import sys, exporter.simulator.cli\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('wsproto', 'h11')"
        " or m in ('exporter.simulator.simulator', 'exporter.simulator.server')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=PACKAGE.parents[1], capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()  # fmt: skip
    assert loaded == "[]"
