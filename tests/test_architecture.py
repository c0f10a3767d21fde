"""The house rules of docs/architecture.md, checked: imports point one way, functions stay short,
every command is on the one command line."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mfcbench"

# The layer graph of docs/architecture.md: each package of mfcbench and the packages it may import.
# An edge not listed here fails the test (an upward import, or report reaching training code).
GRAPH: dict[str, set[str]] = {
    "mfcbench": set(),  # the package root: its public face (lazy) and version
    "core": set(),
    "layers": {"core"},
    "models": {"core", "layers"},
    "tasks": {"core"},
    "data": {"core"},
    "strategies": {"core", "tasks"},
    "train": {"core", "layers", "models", "tasks", "data", "strategies"},
    "measure": {"core", "layers", "models", "tasks", "data", "strategies", "train"},
    "experiments": {"core", "layers", "models", "tasks", "data", "strategies", "train", "measure"},
    "pipeline": {"core", "layers", "models", "tasks", "data", "strategies", "train", "experiments"},
    "report": {"core"},  # reads result files only: never training code, never torch
    "figures": {"core", "layers", "models", "tasks", "data", "strategies", "train", "report"},
    "cli": {"core", "layers", "models", "tasks", "data", "strategies", "train", "measure", "experiments",
            "pipeline", "report", "figures"},
    "__main__": {"cli"},
}


def package_of(module: str) -> str:
    """mfcbench.models.unet -> models; mfcbench -> mfcbench."""
    parts = module.split(".")
    if len(parts) == 1:
        return "mfcbench"
    if parts[1] not in GRAPH:
        raise AssertionError(f"{module} is in no package of GRAPH: add it there and to docs/architecture.md")
    return parts[1]


def allowed(src: str, dst: str) -> bool:
    a, b = package_of(src), package_of(dst)
    return a == b or b == "mfcbench" or b in GRAPH[a]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every mfcbench module `path` imports, at top level or inside functions."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("mfcbench")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("mfcbench"):
                out.add(target)
                out |= {f"{target}.{a.name}" for a in node.names if (PACKAGE.parent / f"{target}.{a.name}".replace(".", "/")).exists()
                        or (PACKAGE.parent / (f"{target}.{a.name}".replace(".", "/") + ".py")).exists()}
    return out


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_imports_point_one_way():
    violations = []
    for path in SOURCES:
        me = module_name(path)
        for target in imported_modules(path):
            if not allowed(me, target):
                violations.append(f"{me} ({package_of(me)}) imports {target} ({package_of(target)}): not an edge of GRAPH")
    assert not violations, "\n".join(violations)


def test_graph_has_no_cycle():
    def visit(node: str, stack: tuple[str, ...]) -> None:
        assert node not in stack, f"cycle: {' -> '.join(stack + (node,))}"
        for nxt in GRAPH[node]:
            visit(nxt, stack + (node,))

    for node in GRAPH:
        visit(node, ())


def test_report_never_reaches_training_code():
    """The report layer's whole reach (transitively) is core: verdicts never import torch or a model."""
    reach, todo = set(), ["report"]
    while todo:
        for nxt in GRAPH[todo.pop()] - reach:
            reach.add(nxt)
            todo.append(nxt)
    assert reach == {"core"}


def test_the_rule_catches_an_upward_import(tmp_path):
    """The checker itself: a models module importing the report layer is flagged."""
    assert not allowed("mfcbench.models.unet", "mfcbench.report.published")
    assert not allowed("mfcbench.report.claims", "mfcbench.train.runner")
    fake = PACKAGE / "models" / "_upward_probe.py"
    try:
        fake.write_text("from ..report.published import load_published\n")
        assert "mfcbench.report.published" in imported_modules(fake)
    finally:
        fake.unlink()


def test_no_function_over_80_lines():
    long = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not long, "\n".join(long)


@pytest.mark.slow
def test_help_lists_every_command():
    from mfcbench.cli import COMMANDS

    proc = subprocess.run([sys.executable, "-m", "mfcbench", "--help"], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    assert proc.returncode == 0
    for name in ("train", "wu", "models", "prepare", "grid", "gather", "measure", "bench", "report", "experiment"):
        assert name in COMMANDS and f"  {name} " in proc.stdout, name
    for module, _ in COMMANDS.values():
        assert (PACKAGE / "cli" / f"{module}.py").is_file()


def test_no_library_module_has_its_own_command_line():
    """Argument parsing lives in mfcbench/cli only."""
    offenders = [str(p.relative_to(ROOT)) for p in SOURCES
                 if "cli" not in p.parts and ("import argparse" in p.read_text() or "__main__" in p.read_text())
                 and p.name != "__main__.py"]
    assert not offenders, offenders


@pytest.mark.parametrize("command", ["train", "wu", "grid", "experiment", "measure", "report", "prepare", "gather",
                                     "bench", "models"])
def test_each_command_has_help(command, capsys):
    from mfcbench.cli import main

    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0 and "usage: python -m mfcbench " + command in capsys.readouterr().out
