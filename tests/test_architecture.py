"""The package's shape: no private name crosses a module boundary, and modules import each other one way.

Read from the source with ``ast`` (nothing is imported), so a change that breaks either rule fails
here with the module and line, before it becomes a habit.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "anomaly"


def modules() -> dict[str, Path]:
    """``anomaly.x.y`` -> file, for every module of the package (the dashboard's pages included)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def imported(tree: ast.AST, module: str, known: dict[str, Path]) -> list[tuple[int, str, list[str]]]:
    """``(line, anomaly module, names)`` of every import of the package in ``tree``, at any depth."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, []) for a in node.names if a.name.split(".")[0] == "anomaly"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "anomaly":
            names = [a.name for a in node.names]
            submodules = [f"{node.module}.{n}" for n in names if f"{node.module}.{n}" in known]
            found += [(node.lineno, node.module, [n for n in names if f"{node.module}.{n}" not in known])]
            found += [(node.lineno, m, []) for m in submodules]
    return found


def test_no_private_name_crosses_a_module_boundary():
    known = modules()
    problems = []
    for module, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        own = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
        own |= {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
        for line, target, names in imported(tree, module, known):
            if any(private(part) for part in target.split(".")):
                problems.append(f"{path.name}:{line} imports the private module {target}")
            problems += [f"{path.name}:{line} imports {target}.{n}" for n in names if private(n)]
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and private(node.attr) and node.attr not in own:
                owner = node.value.id if isinstance(node.value, ast.Name) else None
                if owner not in ("self", "cls"):
                    problems.append(f"{path.name}:{node.lineno} uses {ast.unparse(node)}, private to another module")
    assert not problems, "\n".join(problems)


def test_the_import_graph_has_no_cycle():
    known = modules()
    graph = {m: set() for m in known}
    for module, path in known.items():
        for _, target, _ in imported(ast.parse(path.read_text()), module, known):
            if target in known and target not in (module, "anomaly"):  # the package's __init__ re-exports
                graph[module].add(target)
    cycles, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(trail[trail.index(nxt) :] + [node, nxt]) if nxt in trail else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, trail + [node])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    assert not cycles, "\n".join(cycles)


def test_no_module_imports_the_command_line():
    known = modules()
    users = [
        m
        for m, path in known.items()
        if m not in ("anomaly.cli", "anomaly.__main__")
        and any(t == "anomaly.cli" for _, t, _ in imported(ast.parse(path.read_text()), m, known))
    ]
    assert users == []
