"""The project's own import graph, read from the source with `ast` (nothing is imported).

Used by the checks that a stage's dvc.yaml deps hold every project file it imports and that
the packages of pipeline/ import one another without cycles.
"""

import ast
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The top-level packages that make up the project's code.
PROJECT_PACKAGES = ("pipeline", "stages", "flows")


def module_file(module: str, root: Path = REPO) -> Path | None:
    """The file of a dotted project module (package -> its __init__.py), or None."""
    if module.split(".")[0] not in PROJECT_PACKAGES:
        return None
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path, root: Path = REPO) -> str:
    """pipeline/data/splits.py -> pipeline.data.splits; a package's __init__.py -> the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _parents(module: str) -> list[str]:
    """Importing a.b.c runs a/__init__.py and a/b/__init__.py first."""
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts))]


def imported_modules(path: Path, root: Path = REPO) -> set[str]:
    """Every project module `path` imports anywhere in its body (function-level imports too,
    since they run when the function does), with the packages that hold them."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path, root)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            # `from package import name` imports the submodule `name` when there is one
            found.update(f"{base}.{alias.name}" for alias in node.names)
    modules: set[str] = set()
    for name in found:
        for candidate in [*_parents(name), name]:
            if module_file(candidate, root) is not None:
                modules.add(candidate)
    return modules


def transitive_files(entry: Path, root: Path = REPO) -> set[Path]:
    """`entry` and every project file it imports, directly or through other project files."""
    seen: set[Path] = set()
    # `python -m stages.x` runs stages/__init__.py before stages/x.py
    packages = [module_file(name, root) for name in _parents(module_name(entry, root))]
    pending = [entry, *(path for path in packages if path is not None)]
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in imported_modules(path, root):
            target = module_file(module, root)
            if target is not None and target not in seen:
                pending.append(target)
    return seen


def project_files(root: Path = REPO) -> Iterable[Path]:
    for package in PROJECT_PACKAGES:
        yield from sorted((root / package).rglob("*.py"))
