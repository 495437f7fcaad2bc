"""No import cycles between the packages (and top-level modules) of pipeline/: each one can be
read, tested and changed knowing only the ones below it."""

from collections import defaultdict
from pathlib import Path

from project_imports import REPO, imported_modules, module_name


def unit(module: str) -> str | None:
    """pipeline.data.frames -> pipeline.data; pipeline.config -> pipeline.config; the
    `pipeline` package itself is no unit."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "pipeline" and len(parts) > 1 else None


def package_graph(root: Path = REPO) -> dict[str, set[str]]:
    """Unit -> the other units of pipeline/ its files import (function-level imports too)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in sorted((root / "pipeline").rglob("*.py")):
        source = unit(module_name(path, root))
        if source is None:
            continue
        graph[source]
        for module in imported_modules(path, root):
            target = unit(module)
            if target is not None and target != source:
                graph[source].add(target)
    return dict(graph)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_packages_of_pipeline_import_each_other_without_cycles():
    graph = package_graph()
    assert "pipeline.config" in graph and "pipeline.data" in graph["pipeline.train"]
    found = cycles(graph)
    report = "\n".join(
        "  "
        + " <-> ".join(component)
        + ": "
        + "; ".join(f"{a} -> {', '.join(sorted(graph[a] & set(component)))}" for a in component)
        for component in found
    )
    assert not found, f"import cycles between packages of pipeline/:\n{report}"


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
