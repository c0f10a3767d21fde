"""A package that an extra brings, when missing, names the extra to install (mfcbench/core/optional.py),
and the table behind the message agrees with pyproject.toml's extras."""

from __future__ import annotations

import ast
import re
import sys
import types
from importlib import metadata
from pathlib import Path

import pytest
import torch

import mfcbench as mfc
from mfcbench.core import optional

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "mfcbench"
EXTRAS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
BASE = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def flat(extra: str) -> set[str]:
    """The distributions an extra brings, its `mfcbench[...]` references followed."""
    out: set[str] = set()
    for requirement in EXTRAS[extra]:
        inner = re.fullmatch(r"mfcbench\[([\w,\s-]+)\]", requirement.strip())
        if inner:
            for name in inner.group(1).split(","):
                out |= flat(name.strip())
        else:
            out.add(_name(requirement))
    return out


def closure(distributions: set[str]) -> set[str]:
    """Distributions and everything they require (unconditionally), read from the installed metadata."""
    out, todo = set(), list(distributions)
    while todo:
        name = todo.pop()
        if name in out:
            continue
        out.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [_name(r) for r in requires if "extra ==" not in r]
    return out


def hide(monkeypatch, *names: str) -> None:
    """Make `import name` (and its submodules) fail as if the package were not installed."""
    for key in list(sys.modules):
        if any(key == n or key.startswith(n + ".") for n in names):
            monkeypatch.delitem(sys.modules, key)
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)


# --- the table against pyproject.toml ---------------------------------------------------------------
def test_every_table_row_is_installed_by_its_extra():
    wrong = [f"{module} -> {dist} [{extra}]" for module, (dist, extra) in optional.EXTRAS.items()
             if dist not in closure(flat(extra))]
    assert not wrong, f"mfcbench/core/optional.py EXTRAS names an extra that does not bring: {wrong}"


def test_every_package_of_an_extra_has_a_row():
    named = {dist for dist, _ in optional.EXTRAS.values()}
    for extra in ("lib", "harness", "paper"):
        missing = sorted(flat(extra) - named - {"mfcbench"})
        assert not missing, f"extra {extra!r} brings {missing}, which mfcbench/core/optional.py EXTRAS does not name"


def test_all_is_every_extra_and_the_aliases_keep_their_meaning():
    assert flat("all") == flat("lib") | flat("harness") | flat("paper") | flat("test")
    assert flat("torch") == flat("lib") and flat("pipeline") == flat("harness")
    assert {"torch", "fvcore", "torchmetrics", "snakemake", "dvc", "pandas", "diffusers", "pytest", "ruff"} <= flat("all")
    lib = flat("lib")
    assert not lib & {"snakemake", "dvc", "pandas", "diffusers", "neuraloperator", "segment-anything"}, lib


# --- the message ---------------------------------------------------------------------------------------
def test_require_returns_the_module_and_names_the_extra_when_it_is_missing(monkeypatch):
    assert optional.require("torchmetrics.functional", "lib").__name__ == "torchmetrics.functional"
    hide(monkeypatch, "torchmetrics")
    with pytest.raises(ModuleNotFoundError, match=re.escape("pip install 'mfcbench[lib]'")) as caught:
        optional.require("torchmetrics.functional", "lib")
    assert caught.value.name.startswith("torchmetrics")


def test_explain_leaves_other_modules_alone_and_blames_a_dependency_on_its_extra():
    assert optional.explain(ModuleNotFoundError("No module named 'mine'", name="mine")) is None
    deep = optional.explain(ModuleNotFoundError("No module named 'iopath'", name="iopath"), "lib")
    assert "mfcbench[lib]" in str(deep) and deep.name == "iopath"
    assert "mfcbench[harness]" in str(optional.explain(ModuleNotFoundError("x", name="pandas.core")))


def test_count_flops_without_fvcore_names_the_library_extra(monkeypatch):
    hide(monkeypatch, "fvcore")
    with pytest.raises(ModuleNotFoundError, match=re.escape("mfcbench[lib]")):
        mfc.count_flops(torch.nn.Conv2d(1, 1, 3), (torch.zeros(1, 1, 8, 8),))


def test_superres_metrics_without_torchmetrics_name_the_library_extra(monkeypatch):
    from mfcbench.tasks import superres

    hide(monkeypatch, "torchmetrics")
    images = torch.rand(2, 1, 8, 8)
    for metric in (superres.ssim_per_image, superres.psnr_per_image):
        with pytest.raises(ModuleNotFoundError, match=re.escape("mfcbench[lib]")):
            metric(images, images)


def test_fno_espcn_without_neuraloperator_names_the_paper_extra(monkeypatch):
    hide(monkeypatch, "neuralop")
    with pytest.raises(ModuleNotFoundError, match=re.escape("mfcbench[paper]")):
        mfc.build_model("fno_espcn", 1, 1)


def _skimage():
    from mfcbench.data import skimage_images

    skimage_images.load_image("camera")


def _sklearn():
    from mfcbench.data import digits

    digits.Digits().build_split("train", 8, Path("."), {"val_fraction": 0.2, "mode": "bilinear"})


def _scipy():
    import pandas as pd

    from mfcbench.report import stats

    stats.p_worse(pd.Series([0.1, 0.2]), 0.0)


def _statsmodels():
    from mfcbench.report import stats

    stats.holm([0.01, 0.2])


@pytest.mark.parametrize("hidden, call", [("skimage", _skimage), ("sklearn", _sklearn), ("scipy", _scipy),
                                          ("statsmodels", _statsmodels)])
def test_harness_packages_name_the_harness_extra(monkeypatch, hidden, call):
    hide(monkeypatch, hidden)
    with pytest.raises(ModuleNotFoundError, match=re.escape("mfcbench[harness]")):
        call()


def test_a_public_name_whose_module_needs_a_missing_package_names_the_extra(monkeypatch):
    """`mfc.MeshFreeConv2d` without torch says `pip install 'mfcbench[lib]'`, not only "No module named"."""
    assert mfc.MeshFreeConv2d  # loaded and kept in the namespace; unloaded below, torch hidden
    monkeypatch.delattr(mfc, "MeshFreeConv2d")
    for key in [k for k in sys.modules if k == "mfcbench.layers" or k.startswith("mfcbench.layers.")]:
        monkeypatch.delitem(sys.modules, key)
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ModuleNotFoundError, match=re.escape("pip install 'mfcbench[lib]'")):
        _ = mfc.MeshFreeConv2d


def test_the_command_line_names_the_extra_in_one_line(monkeypatch, capsys):
    from mfcbench import cli

    probe = types.ModuleType("mfcbench.cli._probe")

    def main(argv):
        raise ModuleNotFoundError("No module named 'pandas'", name="pandas")

    probe.main = main
    monkeypatch.setitem(sys.modules, "mfcbench.cli._probe", probe)
    monkeypatch.setitem(cli.COMMANDS, "probe", ("_probe", "a command whose package is missing"))
    assert cli.main(["probe"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mfcbench probe: No module named 'pandas'" in err and "mfcbench[harness]" in err, err
    probe.main = lambda argv: __import__("no_such_module_of_the_user")
    with pytest.raises(ModuleNotFoundError, match="no_such_module_of_the_user"):
        cli.main(["probe"])


def _third_party_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.partition(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.partition(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("mfcbench", "__future__")}


def _guarded(path: Path) -> set[str]:
    """Top-level packages this file imports only after `require("package...", extra)`."""
    return {m.partition(".")[0] for m in re.findall(r'require\("([\w.]+)"', path.read_text())}


LIBRARY = ("core", "layers", "models", "tasks", "data", "strategies", "train", "measure/flops.py",
           "measure/flop_handles.py", "__init__.py")


def test_the_library_extra_covers_every_import_of_the_library():
    """Every third-party package the library's modules import comes with the base install or the `lib`
    extra (or the module names the other extra with `require`): a `pip install 'mfcbench[lib]'` runs
    the layer, the loss, `fit`, the FLOPs and the metrics (tests/test_wheel.py does it for real)."""
    to_distribution = metadata.packages_distributions()
    allowed = closure({_name(r) for r in BASE} | flat("lib"))
    files = [p for part in LIBRARY for p in ((PACKAGE / part).rglob("*.py") if (PACKAGE / part).is_dir()
                                             else [PACKAGE / part])]
    problems = []
    for path in files:
        for module in sorted(_third_party_imports(path) - _guarded(path)):
            distributions = {_name(d) for d in to_distribution.get(module, [module])}
            if not distributions & allowed:
                problems.append(f"{path.relative_to(ROOT)}: {module} ({', '.join(sorted(distributions))})")
    assert not problems, ("library modules import packages the `lib` extra does not bring (add them to it, or "
                          f"import them after mfcbench.core.optional.require naming their extra): {problems}")
