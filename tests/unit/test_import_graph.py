"""labkit's modules import downward only: no circles, display at the bottom.

The graph is read from the source (ast), so an import inside a function counts as much
as one at the top: a lazy import hides a circle from Python, not from a maintainer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import labkit

PACKAGE = Path(labkit.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module → the labkit modules it imports (anywhere in its body).

    ``from labkit import ecr`` counts as importing ``labkit.ecr``. A package's
    ``__init__`` is no edge target: importing ``labkit.tasks.task1`` runs it, but what it
    re-exports is its own business (its own imports are edges like any module's)."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            for target in targets:
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target != name and files[target].name != "__init__.py":
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_the_checker_sees_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycles_in_labkit():
    graph = import_graph()
    assert "labkit.ecs" in graph["labkit.views"]  # the graph is really read
    assert cycles(graph) == []


def _reaches(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def test_display_is_the_bottom():
    """Every module may show things; showing things needs nothing of the lab."""
    assert import_graph()["labkit.display"] <= {"labkit.errors"}


def test_settings_and_the_lab_read_nothing_above_them():
    """config (the settings and their validation) and the Lab object sit below the task
    modules: they reach the backends (to connect), never ecr, ecs, views, widgets…"""
    graph = import_graph()
    above = {
        f"labkit.{name}"
        for name in (
            "ecr",
            "ecs",
            "images",
            "live_dashboard",
            "network",
            "runner",
            "shell",
            "taskdef",
            "teardown",
            "views",
            "widgets",
            "cli",
        )
    }
    above |= {name for name in graph if name.startswith("labkit.tasks")}
    assert _reaches(graph, "labkit.config") <= {"labkit.errors", "labkit.names"}
    assert not _reaches(graph, "labkit.lab") & above
