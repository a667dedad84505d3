"""Static import graph of ``marssep_core`` for the deps-drift and import-cycle tests.

Reads source with :mod:`ast` (nothing is imported, so the walk is fast and has no side effects).
Imports inside functions count like module-level ones: a stage that calls the function runs them.
The one exception is a package's PEP 562 ``__getattr__`` (``marssep_core.separate``): its import
runs only when a caller spells that attribute, which is not an import this walk could follow.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "marssep_core"


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The file that defines module ``name`` (``a.b`` -> ``a/b.py`` or ``a/b/__init__.py``)."""
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _with_parents(name: str) -> list[str]:
    """``a.b.c`` -> ``[a, a.b, a.b.c]``: importing a module runs every enclosing package's ``__init__``."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _lazy_attribute_hooks(tree: ast.Module) -> set[ast.AST]:
    return {node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "__getattr__"}


def direct_imports(path: Path, root: Path = ROOT) -> set[str]:
    """Names of the ``marssep_core`` modules (and their packages) that the file at ``path`` imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped = {id(sub) for hook in _lazy_attribute_hooks(tree) for sub in ast.walk(hook)}
    relative = path.resolve().relative_to(root).with_suffix("").parts
    package_parts = relative[:-1]  # the package of a module and of a package's __init__ alike
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package_parts[: len(package_parts) - node.level + 1]
                base = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                base = node.module or ""
            # ``from pkg import name``: name is a submodule when such a file exists, else an attribute
            names = [base] + [f"{base}.{alias.name}" for alias in node.names if module_file(f"{base}.{alias.name}", root)]
        else:
            continue
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                found.update(part for part in _with_parents(name) if module_file(part, root))
    return found


def transitive_imports(entry: Path, root: Path = ROOT) -> set[str]:
    """Every ``marssep_core`` module that running the script ``entry`` can import."""
    seen: set[str] = set()
    pending = list(direct_imports(entry, root))
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        pending.extend(direct_imports(module_file(name, root), root) - seen)
    return seen


def all_modules(root: Path = ROOT) -> list[str]:
    """Every module of the package, by dotted name."""
    names = []
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def subpackage(name: str) -> str:
    """The node of the cycle test: ``marssep_core.separation.model`` -> ``separation``; top-level
    modules (``config``, ``io_utils``, ``cli``) are their own node."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def subpackage_edges(root: Path = ROOT) -> dict[str, dict[str, list[str]]]:
    """``{from_subpackage: {to_subpackage: [importing module -> imported module, ...]}}``, package
    ``__init__`` edges left out (every module imports its enclosing packages)."""
    edges: dict[str, dict[str, list[str]]] = {}
    for name in all_modules(root):
        source = subpackage(name)
        for target_name in direct_imports(module_file(name, root), root):
            target = subpackage(target_name)
            if target_name == PACKAGE or target == source:
                continue
            edges.setdefault(source, {}).setdefault(target, []).append(f"{name} -> {target_name}")
    return edges


def find_cycles(edges: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, {}):
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
                components.append(sorted(component))

    nodes: Iterable[str] = set(edges) | {t for targets in edges.values() for t in targets}
    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return components


def stage_script(command: str) -> Path | None:
    """The ``pipeline/*.py`` script a ``dvc.yaml`` command runs (``None`` for other commands)."""
    for word in command.split():
        if word.startswith("pipeline/") and word.endswith(".py"):
            return ROOT / word
    return None


def covered(file: str, deps: Iterable[str]) -> bool:
    """Whether a dependency (a file, or a folder above it) names ``file``."""
    return any(file == dep or file.startswith(dep.rstrip("/") + "/") for dep in deps)


def code_deps(script: Path, root: Path = ROOT) -> list[str]:
    """The ``marssep_core`` deps a stage running ``script`` needs: its imported module files, a
    package folder in their place when the stage imports every module under it."""
    files = {module_file(name, root).relative_to(root).as_posix() for name in transitive_imports(script, root)}
    folders = sorted({str(Path(f).parent.as_posix()) for f in files}, key=lambda f: f.count("/"))
    chosen: list[str] = []
    for folder in folders:
        if covered(folder + "/__init__.py", chosen) or folder == PACKAGE:
            continue
        everything = {p.relative_to(root).as_posix() for p in (root / folder).rglob("*.py")}
        if everything <= files:
            chosen.append(folder)
    chosen += [f for f in sorted(files) if not covered(f, chosen)]
    return sorted(chosen)


def stage_problems(name: str, spec: dict, root: Path = ROOT) -> list[str]:
    """What is wrong with one ``dvc.yaml`` stage's code deps: an imported module no dep names, or a
    ``marssep_core`` dep the stage's script never imports."""
    script = stage_script(spec["cmd"])
    if script is None:
        return []
    deps = [dep if isinstance(dep, str) else next(iter(dep)) for dep in spec.get("deps", [])]
    problems = []
    if script.relative_to(root).as_posix() not in deps:
        problems.append(f"{name}: its script {script.relative_to(root)} is not a dep")
    imported = {module_file(m, root).relative_to(root).as_posix() for m in transitive_imports(script, root)}
    problems += [f"{name}: imports {f}, which no dep names" for f in sorted(imported) if not covered(f, deps)]
    for dep in deps:
        if dep.startswith(PACKAGE) and not any(covered(f, [dep]) for f in imported):
            problems.append(f"{name}: dep {dep} is never imported by {script.relative_to(root)}")
    return problems


if __name__ == "__main__":
    import sys

    import yaml

    # ``python tests/import_graph.py [stage ...]``: the code deps to list for each stage
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for stage in sys.argv[1:] or stages:
        script = stage_script(stages[stage]["cmd"])
        if script is not None:
            print(f"{stage}:\n" + "".join(f"      - {dep}\n" for dep in code_deps(script)))
