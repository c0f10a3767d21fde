"""The house rules of docs/architecture.md, checked: imports point one way and close no circle, functions
and modules stay short, every command is on the one command line."""

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


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Every mfcbench module `path` imports, at top level or inside functions."""
    me = module_name(path, root)
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
                out |= {f"{target}.{a.name}" for a in node.names if (root / f"{target}.{a.name}".replace(".", "/")).exists()
                        or (root / (f"{target}.{a.name}".replace(".", "/") + ".py")).exists()}
    return out


def _packages_above(module: str) -> set[str]:
    """mfcbench.report.checks.time -> {mfcbench, mfcbench.report, mfcbench.report.checks}."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def module_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Each module of the package under `root` -> the modules importing it runs, late imports included.

    Importing `a.b.c` first runs `a/__init__` and `a/b/__init__`, so those are edges too; a module's own
    packages are left out (Python has run them before the module, so they close no circle)."""
    graph = {}
    for path in sorted((root / "mfcbench").rglob("*.py")):
        me = module_name(path, root)
        targets = set()
        for target in imported_modules(path, root):
            targets |= {target} | _packages_above(target)
        graph[me] = targets - _packages_above(me) - {me}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of `graph` as [a, b, ..., a], or None (depth-first, white/grey/black)."""
    state: dict[str, int] = {}  # absent: unvisited, 1: on the current path, 2: done
    for start in sorted(graph):
        if start in state:
            continue
        state[start], path, todo = 1, [start], [iter(sorted(graph[start]))]
        while todo:
            nxt = next(todo[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                todo.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state and nxt in graph:
                state[nxt] = 1
                path.append(nxt)
                todo.append(iter(sorted(graph[nxt])))
    return None


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


def test_no_import_circle_between_modules():
    """No module of mfcbench imports (at top level or late, inside a function) one that leads back to it."""
    cycle = find_cycle(module_graph())
    assert cycle is None, f"import circle: {' -> '.join(cycle)}; move the shared code down a module"


def test_the_cycle_check_catches_a_late_import_circle(tmp_path):
    """The checker itself: two modules importing each other, one of them inside a function, are a circle."""
    package = tmp_path / "mfcbench" / "figures"
    package.mkdir(parents=True)
    for init in (tmp_path / "mfcbench" / "__init__.py", package / "__init__.py"):
        init.write_text("")
    (package / "paper.py").write_text("from .scaling import draw\n\n\ndef table():\n    return 1\n")
    (package / "scaling.py").write_text("def draw():\n    from .paper import table\n    return table()\n")
    cycle = find_cycle(module_graph(tmp_path))
    assert cycle is not None and set(cycle) == {"mfcbench.figures.paper", "mfcbench.figures.scaling"}
    (package / "scaling.py").write_text("def draw():\n    return 1\n")
    assert find_cycle(module_graph(tmp_path)) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]


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


MAX_POSITIONAL = 6  # beyond this a call site cannot be read without the signature: take keywords or a record
MAX_MODULE_LINES = 400  # figures/ excepted: a figure's drawing reads best whole


def test_no_function_takes_more_than_6_positional_parameters():
    """self and cls are not counted; keyword-only parameters (after `*`) are free."""
    offenders = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names = [a.arg for a in node.args.posonlyargs + node.args.args]
                count = len(names) - (names[:1] in (["self"], ["cls"]))
                if count > MAX_POSITIONAL:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({count} positional)")
    assert not offenders, "\n".join(offenders) + f"\nmake the parameters after the {MAX_POSITIONAL}th keyword-only"


def test_no_module_outside_figures_over_400_lines():
    long = [f"{p.relative_to(ROOT)} ({n} lines)" for p in SOURCES if "figures" not in p.relative_to(PACKAGE).parts
            and (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    assert not long, "\n".join(long) + f"\nsplit each by concern below {MAX_MODULE_LINES} lines"


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
