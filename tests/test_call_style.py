"""Calls that pass more than four positional arguments to the project's own functions and classes
must name them: ``run_rl_stage(cfg=..., raw_dir=..., ...)`` cannot silently swap two paths."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.import_graph import ROOT

MAX_POSITIONAL = 4
SOURCES = ("marssep_core", "pipeline", "flows", "tests", "benchmarks")


def _callables(files: list[Path]) -> dict[str, bool]:
    """``{name: takes *args}`` for every function, method and class defined in ``files``."""
    found: dict[str, bool] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found[node.name] = found.get(node.name, False) or node.args.vararg is not None
            elif isinstance(node, ast.ClassDef):
                found.setdefault(node.name, False)
    return found


def positional_calls(files: list[Path], limit: int = MAX_POSITIONAL) -> list[str]:
    """``file:line name (n)`` for calls of project callables with more than ``limit`` positional
    arguments; callables that take ``*args`` and ``super().__init__`` (checked by the class) are
    left out, as are names the project does not define (library calls)."""
    project = _callables(files)
    problems = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or len(node.args) <= limit:
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name is None or name not in project or project[name] or name == "__init__":
                continue
            problems.append(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{node.lineno} {name} ({len(node.args)})")
    return problems


def test_long_calls_use_keywords():
    files = [path for folder in SOURCES for path in sorted((ROOT / folder).rglob("*.py"))]
    assert positional_calls(files) == []


def test_a_planted_positional_call_is_found(tmp_path: Path):
    module = tmp_path / "stage.py"
    module.write_text("def run(a, b, c, d, e):\n    return a\n\n\ndef log(*parts):\n    return parts\n\n\n"
                      "run(1, 2, 3, 4, 5)\nrun(1, 2, 3, 4, e=5)\nlog(1, 2, 3, 4, 5)\nprint(1, 2, 3, 4, 5)\n")
    assert positional_calls([module]) == [f"{module}:9 run (5)"]
