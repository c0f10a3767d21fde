"""docs/architecture.md stays true: the modules it names exist, its layer table is the architecture test's
GRAPH, and every module of mfcbench is in its package map."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from test_architecture import GRAPH

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mfcbench"
DOC = ROOT / "docs" / "architecture.md"
TEXT = DOC.read_text()
# the package's plumbing: a package's __init__ is its row of the layer table, __main__ is `python -m mfcbench`
PLUMBING = {"__init__.py", "__main__.py"}


def section(title: str) -> str:
    """The text of the `## title` section."""
    start = TEXT.index(f"\n## {title}")
    end = TEXT.find("\n## ", start + 1)
    return TEXT[start:end if end > 0 else None]


def table_rows(text: str) -> list[list[str]]:
    """The body rows of the markdown tables in `text`, as stripped cells (header and rule rows left out)."""
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in text.splitlines()
            if line.startswith("|") and not line.startswith("|---")]
    return [row for row in rows if not row[0].startswith(("package", "module"))]


def layer_table() -> dict[str, set[str]]:
    """`core/` ... `cli/` -> the packages its "may import" column names ("nothing of mfcbench": none)."""
    head = TEXT[:TEXT.index("\n## ")]
    out = {}
    for package, _, may_import in table_rows(head):
        names = set() if may_import == "nothing of mfcbench" else {n.strip() for n in may_import.split(",")}
        out[package.strip("`").rstrip("/")] = names
    return out


def package_map() -> dict[str, str]:
    """`mfcbench/...` (a module or a package folder) -> its row's text."""
    return {row[0].strip("`"): row[1] for row in table_rows(section("Package map"))}


def test_every_module_path_the_doc_names_exists():
    named = set(re.findall(r"\bmfcbench/[\w/]+(?:\.py|\.yaml|/)", TEXT))
    packages = "|".join(sorted(set(GRAPH) - {"mfcbench", "__main__"}))
    short = {f"mfcbench/{p}" for p in re.findall(rf"(?<![\w/.])((?:{packages})/[\w/]*\w\.py)", TEXT)}
    missing = sorted(p for p in named | short if not (ROOT / p).exists())
    assert not missing, f"docs/architecture.md names {missing}: no such file or folder; correct the doc"


def test_every_file_a_package_row_names_is_in_that_package():
    missing = []
    for key, text in package_map().items():
        folder = PACKAGE / key.removeprefix("mfcbench/").split("/")[0]
        for name in re.findall(r"`(\w+\.py)`", text):
            if not list(folder.rglob(name)):
                missing.append(f"{key}: {name} is not in {folder.relative_to(ROOT)}/")
    assert not missing, "\n".join(missing)


def test_the_layer_table_is_the_architecture_graph():
    """The table's packages are mfcbench's folders and GRAPH's keys; each "may import" is GRAPH's set."""
    table = layer_table()
    folders = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert set(table) == folders == set(GRAPH) - {"mfcbench", "__main__"}, (sorted(table), sorted(folders))
    wrong = [f"{p}/: the doc says {sorted(table[p])}, tests/test_architecture.py GRAPH says {sorted(GRAPH[p])}"
             for p in sorted(table) if table[p] != GRAPH[p]]
    assert not wrong, "\n".join(wrong)


def in_package_map(path: Path, rows: dict[str, str]) -> bool:
    """A module is in the map when its path has a row, or its name (`unet` or `unet.py`; `gpu_check` also as
    the command `gpu-check`) is a word of a row of its top package (`mfcbench/models/...`)."""
    rel = path.relative_to(ROOT).as_posix()
    if rel in rows or path.name in PLUMBING:
        return True
    top = "mfcbench/" + path.relative_to(PACKAGE).parts[0] + "/"
    text = " ".join(v for k, v in rows.items() if k.startswith(top))
    names = {path.stem, path.stem.replace("_", "-")}
    return any(re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", text) for n in names)


def test_every_module_is_in_the_package_map():
    rows = package_map()
    absent = [p.relative_to(ROOT).as_posix() for p in sorted(PACKAGE.rglob("*.py"))
              if len(p.relative_to(PACKAGE).parts) > 1 and not in_package_map(p, rows)]
    assert not absent, f"modules missing from docs/architecture.md's package map (add a row or name them in " \
                       f"their package's row): {absent}"


def test_the_map_rule_catches_a_new_module():
    rows = package_map()
    assert in_package_map(PACKAGE / "models" / "unet.py", rows)
    assert in_package_map(PACKAGE / "cli" / "gpu_check.py", rows)
    assert not in_package_map(PACKAGE / "models" / "transformer_probe.py", rows)
    assert not in_package_map(PACKAGE / "pipeline" / "scheduler_probe.py", rows)


def test_all_drawing_is_in_figures():
    """The layer table says figures/ holds all drawing: no module outside it imports matplotlib."""
    drawing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "figures" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n.split(".")[0] == "matplotlib" for n in names):
                drawing.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not drawing, f"matplotlib imported outside mfcbench/figures/: {drawing}"


def test_every_name_a_module_row_gives_is_defined_there():
    """A `name` or `name(...)` in a package map row is a word of that row's module (or package) sources;
    module names and commands excepted."""
    from mfcbench.cli import COMMANDS

    stems = {p.stem for p in PACKAGE.rglob("*.py")} | {p.name for p in PACKAGE.rglob("*") if p.is_dir()}
    sources = {p: p.read_text() for p in PACKAGE.rglob("*.py")}
    missing = []
    for key, text in package_map().items():
        body = " ".join(s for p, s in sources.items() if p.relative_to(ROOT).as_posix().startswith(key.rstrip("/")))
        for name in sorted(set(re.findall(r"`([A-Za-z_]\w{2,})[`(]", text)) - stems - set(COMMANDS)):
            if not re.search(rf"\b{name}\b", body):
                missing.append(f"{key}: `{name}`")
    assert not missing, f"docs/architecture.md names what its module does not define: {missing}"
