"""Every figure is written one way (`mfcbench.figures.save`), at one dpi, and all drawing lives in figures/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mfcbench.figures import save

PACKAGE = Path(__file__).resolve().parents[2] / "mfcbench"


def _calls_and_imports(path: Path) -> tuple[set[str], set[str]]:
    """(names of the attributes/functions called, top-level modules imported) in one source file."""
    calls, imports = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            calls.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
            calls |= {f"kw:{k.arg}" for k in node.keywords if k.arg}
        elif isinstance(node, ast.Import):
            imports |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imports.add(node.module.split(".")[0])
    return calls, imports


def test_all_drawing_lives_in_figures_and_every_png_goes_through_save_png():
    drawing_outside, saving_elsewhere = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        calls, imports = _calls_and_imports(path)
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] != "figures" and ("matplotlib" in imports or {"savefig", "save_image"} & calls):
            drawing_outside.append(str(relative))
        if relative != Path("figures/save.py") and ({"savefig"} & calls or "kw:dpi" in calls):
            saving_elsewhere.append(str(relative))
    assert not drawing_outside, f"drawing outside mfcbench/figures: {drawing_outside}"
    assert not saving_elsewhere, f"a figure saved outside figures/save.py (or at its own dpi): {saving_elsewhere}"


def test_save_png_writes_at_the_one_dpi_and_closes_the_figure(tmp_path):
    pytest.importorskip("matplotlib")
    from PIL import Image

    plt = save.pyplot()
    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [1, 0])
    out = save.save_png(fig, tmp_path / "deep" / "f.png")
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (2 * save.DPI, 1 * save.DPI)
    assert not plt.fignum_exists(fig.number)
    assert sorted(p.name for p in out.parent.iterdir()) == ["f.png"]  # atomic: no temporary file left


def test_paper_and_scaling_share_the_saver_without_importing_each_other():
    _, scaling_imports = _calls_and_imports(PACKAGE / "figures" / "scaling.py")
    tree = ast.parse((PACKAGE / "figures" / "scaling.py").read_text())
    relative = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level}
    assert "paper" not in relative and "save" in relative
    from mfcbench.figures import paper, scaling

    assert paper.FIGURES.get("scaling") is scaling.scaling_figure and paper.REQUIRED["scaling"] == scaling.REQUIRED
    assert paper.save_figure is scaling.save_figure is save.save_figure
