"""No import cycles in workflows/ and steps/, lazy ones (an import inside a function) included (issue 12:
engine <-> state and cli <-> cluster.commands were cycles hidden behind function-level imports)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("workflows", "steps")


def _modules(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imported(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `module` imports anywhere in its body, functions included. `from a import b` counts
    as importing `a.b` when that is a module; a parent package's own import is not counted (Python runs it
    first either way)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names += [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    edges = set()
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name and name != module:
            edges.add(name)
    return edges


def import_cycles(root: Path, packages: tuple[str, ...]) -> list[list[str]]:
    """Every import cycle among the packages' modules, each as a path that returns to its start."""
    modules = _modules(root, packages)
    graph = {module: sorted(_imported(module, path, modules)) for module, path in modules.items()}
    cycles: list[list[str]] = []
    state: dict[str, str] = {}

    def visit(module: str, stack: list[str]) -> None:
        state[module] = "open"
        for imported in graph[module]:
            if state.get(imported) == "open":
                cycles.append(stack[stack.index(imported):] + [imported])
            elif imported not in state:
                visit(imported, stack + [imported])
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module, [module])
    return cycles


def test_no_import_cycles_lazy_ones_included() -> None:
    assert import_cycles(ROOT, PACKAGES) == []


def test_the_check_finds_a_cycle_behind_a_lazy_import(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "engine.py").write_text("from pkg.sub.state import save\n")
    (package / "sub" / "state.py").write_text("def save():\n    from ..engine import run\n")
    (package / "alone.py").write_text("import pkg.sub.state\n")
    cycles = import_cycles(tmp_path, ("pkg",))
    assert [set(cycle) for cycle in cycles] == [{"pkg.engine", "pkg.sub.state"}]
    assert cycles[0][0] == cycles[0][-1]
