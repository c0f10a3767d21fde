"""A built wheel works outside the checkout: every data file the package reads is package data (the
profile schema, the published values, the claims, the figure captions), found beside the modules that
read it, never through the repository's folders."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mfcbench"
# Files the package reads at run time: a wheel without one of them fails far from the cause.
REQUIRED = ("pipeline/config.schema.yaml", "pipeline/base.schema.yaml", "core/published.yaml", "report/claims.yaml",
            "report/captions/fig3.rst")


def package_data_patterns() -> list[str]:
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return spec["tool"]["setuptools"]["package-data"]["mfcbench"]


def data_files() -> set[str]:
    """Every file under mfcbench/ that is not Python (what package-data must ship)."""
    return {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}


def test_package_data_ships_every_data_file():
    shipped = {p.relative_to(PACKAGE).as_posix() for pattern in package_data_patterns() for p in PACKAGE.glob(pattern)}
    assert set(REQUIRED) <= data_files(), f"missing from the checkout: {set(REQUIRED) - data_files()}"
    missing = sorted(data_files() - shipped)
    assert not missing, f"pyproject.toml [tool.setuptools.package-data] does not ship {missing}: add a pattern"


def test_the_schema_is_read_from_the_package():
    from mfcbench.pipeline.schema import BASE_SCHEMA_PATH, SCHEMA_PATH

    assert SCHEMA_PATH.parent == PACKAGE / "pipeline" and BASE_SCHEMA_PATH.parent == PACKAGE / "pipeline"
    assert not (ROOT / "workflow" / "schemas").exists(), "one schema file: mfcbench/pipeline/config.schema.yaml"


def _build_wheel(tmp: Path) -> Path:
    """The wheel of the working tree, built from a copy (the checkout gets no build/ or egg-info)."""
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(PACKAGE, src / "mfcbench", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp / "dist")], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp / "dist").glob("mfcbench-*.whl")
    return wheel


@pytest.mark.slow
def test_a_built_wheel_works_outside_the_checkout(tmp_path):
    wheel = _build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"mfcbench/{f}" for f in data_files()} <= names, sorted({f"mfcbench/{f}" for f in data_files()} - names)
    assert "mfcbench/py.typed" in names  # type checkers read the package's annotations (PEP 561)
    # torch, jsonschema and the rest come from this interpreter's site-packages; the venv's own copy of
    # mfcbench comes first on its path, ahead of the checkout's editable install.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(tmp_path / "venv")], check=True,
                   capture_output=True, timeout=300)
    python = tmp_path / "venv" / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True, timeout=300)
    work = tmp_path / "elsewhere"
    work.mkdir()
    shutil.copy(ROOT / "workflow" / "config" / "default.yaml", work / "default.yaml")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def run(*args: str) -> str:
        done = subprocess.run([str(python), *args], cwd=work, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    where = run("-c", "import mfcbench, sys; from mfcbench.pipeline import schema; from mfcbench.core import published; "
                "schema.load_schema(); published.published_table('table9'); print(mfcbench.__file__)")
    assert Path(where.strip()).is_relative_to(tmp_path / "venv"), where
    assert "cells" in run("-m", "mfcbench", "grid", "--config", "default.yaml")


# Run in a venv that holds only the wheel and its `lib` extra: the examples, `fit` on the
# super-resolution task (torchmetrics), FLOPs (fvcore), and a model of the `paper` extra naming it.
LIBRARY_CHECK = """
import torch, mfcbench as mfc
from torch.nn import functional as F
x = torch.rand(8, 1, 16, 16)
net = torch.nn.Sequential(mfc.MeshFreeConv2d(1, 4), torch.nn.ReLU(), mfc.MeshFreeConv2d(4, 1))
loss, wu = mfc.multiscale_loss(net, x, x, F.mse_loss, levels=2)
assert mfc.count_flops(net, (x[:1],)).forward > 0
model, result = mfc.fit(mfc.build_model("espcn", 1, 1), x, x[:4], task="superres", levels=2, iterations=1,
                        batch_size=1, log=None)
assert "val_ssim" in result["metrics"], result["metrics"]
try:
    mfc.build_model("fno_espcn", 1, 1)
except ModuleNotFoundError as error:
    assert "mfcbench[paper]" in str(error), error
else:
    raise AssertionError("fno_espcn built without neuraloperator")
print("library ok")
"""


@pytest.mark.slow
def test_the_library_extra_alone_runs_the_library_and_the_examples(tmp_path):
    """`pip install 'mfcbench[lib]'` (the README's install for a library user) into a venv that sees no
    other package: the layer, the loss, `fit`, FLOPs, metrics and the shipped examples run, and a
    command that needs the harness names its extra. It installs from pip's configured index, several GB
    with torch (README "Install"), without byte-compiling (the slow part of the install); the venv is
    removed at the end."""
    wheel = _build_wheel(tmp_path)
    venv = tmp_path / "lib"
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
        python = venv / "bin" / "python"
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-compile", f"{wheel}[lib]"], capture_output=True,
                              text=True, timeout=1200)
        assert done.returncode == 0, done.stderr[-3000:]
        work = tmp_path / "elsewhere"
        shutil.copytree(ROOT / "examples", work / "examples")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"MFCBENCH_REEXEC": "0"}

        def run(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([str(python), *args], cwd=work, env=env, capture_output=True, text=True, timeout=600)

        absent = run("-c", "import importlib.util as u; print([m for m in ('pandas', 'snakemake', 'scipy', 'diffusers') "
                           "if u.find_spec(m)])")
        assert absent.stdout.strip() == "[]", absent.stdout + absent.stderr  # the lib extra alone
        checked = run("-c", LIBRARY_CHECK)
        assert checked.returncode == 0 and "library ok" in checked.stdout, checked.stderr[-3000:]
        for example in ("own_cnn_fmsgd", "torchvision_msgd", "flops"):
            done = run(f"examples/{example}.py", "--tiny")
            assert done.returncode == 0, f"examples/{example}.py: {done.stderr[-3000:]}"
        prepare = run("-m", "mfcbench", "prepare", "--dataset", "skimage", "--image-size", "16", "--root", "data")
        assert prepare.returncode == 1 and "pip install 'mfcbench[harness]'" in prepare.stderr, prepare.stderr[-3000:]
        version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
        assert run("-m", "mfcbench", "--version").stdout.strip() == f"mfcbench {version}"
    finally:
        shutil.rmtree(venv, ignore_errors=True)
