"""Your own model and data in the harness: `--arch package.module:function`, a tensor file or image
folder as `--dataset`, both in a profile, through the command line and `run_cell`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from mfcbench.cli import main
from mfcbench.data import open_dataset, prepare
from mfcbench.data.store import splits_sha256
from mfcbench.data.tensors import read_path

ROOT = Path(__file__).resolve().parents[2]
ARCH = "mfcb_user_nets.nets:tiny"
TINY = ["image_size=8", "levels=2", "iterations=[2,2]", "val_every=2", "checkpoint_every=2", "val_size=2",
        "batch_size=2"]
NETS = '''
import torch


class Tiny(torch.nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = torch.nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, x, cond=None):
        return self.conv(x)


def tiny(in_channels, out_channels, *, cond=False, upscale=1, **options):
    return Tiny(in_channels, out_channels)
'''


@pytest.fixture()
def user_pkg(tmp_path, monkeypatch):
    """A package of the user's own, importable from tmp_path (as PYTHONPATH would make it)."""
    pkg = tmp_path / "pkgs" / "mfcb_user_nets"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(NETS)
    monkeypatch.syspath_prepend(str(pkg.parent))
    return pkg.parent


@pytest.fixture()
def user_tensor(tmp_path):
    path = tmp_path / "mine.pt"
    torch.save(torch.rand(20, 1, 8, 8, generator=torch.Generator().manual_seed(1)), path)
    return path


def _metrics(cell: Path) -> dict:
    return json.loads((cell / "metrics.json").read_text())


def test_user_model_and_tensor_file_train_through_the_command_line(tmp_path, user_pkg, user_tensor):
    cell = tmp_path / "cell"
    argv = ["train", "--task", "denoise", "--dataset", str(user_tensor), "--arch", ARCH, "--strategy", "fmsgd",
            "--out", str(cell), "--set", *TINY]
    assert main(argv) == 0
    record = _metrics(cell)
    assert record["status"] == "ok" and record["cell"]["arch"] == ARCH and record["iterations"] == 4
    assert record["manifest"]["dataset_checksum"] == splits_sha256(read_path(user_tensor, 8))
    assert record["params"] == 1 * 1 * 9 + 1  # the user's one 3x3 conv
    assert record["metric_notes"]["value_range"] == [-1, 1] and "4x" in record["metric_notes"]["val_mse"]


def test_user_model_and_tensor_file_train_through_run_cell(tmp_path, user_pkg, user_tensor):
    from mfcbench.train.runner import run_cell

    record = run_cell({"image_size": 8, "levels": 2, "iterations": [2, 2], "val_every": 2, "val_size": 2,
                       "batch_size": 2}, task="denoise", dataset=str(user_tensor), arch=ARCH, strategy="msgd",
                      out_dir=tmp_path / "cell", progress=False, log=lambda _: None)
    assert record["status"] == "ok" and record["val_images"] == 2
    assert record["manifest"]["dataset"] == str(user_tensor)


def test_a_single_tensor_splits_deterministically(user_tensor):
    images = torch.load(user_tensor)
    splits = read_path(user_tensor, 8)
    assert torch.equal(splits["val"], images[[0, 19]])  # 10% of 20, evenly spaced
    assert torch.equal(splits["train"], images[1:19])
    assert splits_sha256(read_path(user_tensor, 8)) == splits_sha256(splits)
    assert len(read_path(user_tensor, 8, val_fraction=0.25)["val"]) == 5


def test_a_dict_file_an_image_folder_and_resizing(tmp_path):
    from PIL import Image

    pair = {"train": torch.rand(3, 3, 12, 16), "val": (torch.rand(2, 3, 8, 8) * 255).to(torch.uint8)}
    torch.save(pair, tmp_path / "pair.pt")
    splits = read_path(tmp_path / "pair.pt", 8)
    assert splits["train"].shape == (3, 3, 8, 8) and splits["val"].shape == (2, 3, 8, 8)
    assert torch.allclose(splits["val"], pair["val"].float() / 255)  # right size already: untouched
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(4):
        Image.new("L", (10 + i, 12), color=40 * i).save(folder / f"{i}.png")
    splits = read_path(folder, 8, val_fraction=0.25)
    assert splits["train"].shape == (3, 1, 8, 8) and splits["val"].shape == (1, 1, 8, 8)
    assert torch.allclose(splits["val"], torch.full((1, 1, 8, 8), 0.0))  # the first file, evenly spaced


@pytest.mark.parametrize("held, words", [
    (torch.rand(4, 1, 8, 8) * 255, ["values span", "expected [0, 1]", "x / 255"]),
    (torch.rand(1, 1, 8, 8), ["at least 2 images"]),
    ({"train": torch.rand(2, 1, 8, 8)}, ["exactly the keys 'train' and 'val'"]),
    (torch.full((2, 1, 8, 8), float("nan")), ["NaN"]),
])
def test_bad_tensor_files_are_refused_naming_the_file(tmp_path, held, words):
    path = tmp_path / "bad.pt"
    torch.save(held, path)
    with pytest.raises(ValueError) as error:
        read_path(path, 8)
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    for word in words:
        assert word in str(error.value)


def test_prepared_under_a_name_it_trains_as_any_dataset(tmp_path, user_pkg, user_tensor, capsys):
    root = tmp_path / "data"
    assert main(["prepare", "--dataset", "mine", "--path", str(user_tensor), "--image-size", "8",
                 "--root", str(root)]) == 0
    opened = open_dataset("mine", 8, root)
    assert opened.checksum == splits_sha256(read_path(user_tensor, 8))
    assert (root / "prepared" / "mine" / "8" / "checksum.txt").read_text().strip() == opened.checksum
    cell = tmp_path / "cell"
    assert main(["train", "--task", "denoise", "--dataset", "mine", "--arch", ARCH, "--strategy", "sgd",
                 "--out", str(cell), "--require-prepared", "--set", *TINY, f"data_root={root}"]) == 0
    assert _metrics(cell)["manifest"]["dataset_checksum"] == opened.checksum
    with pytest.raises(ValueError, match="registered dataset"):
        prepare("digits", 8, root, path=user_tensor)


def _user_profile(tmp_path: Path, data_path: str, arch: str = ARCH) -> dict:
    profile = yaml.safe_load((ROOT / "workflow" / "config" / "tiny.yaml").read_text())
    profile.update(profile="mine", extras=[], data_root=str(tmp_path / "data"),
                   datasets={"mine": {"image_size": 8, "prepare_options": {"path": data_path}}})
    profile["defaults"] = {**profile["defaults"], "model": {}, "val_size": 2, "iterations": [2, 2]}
    profile["tables"] = {"table4": {"task": "denoise", "dataset": "mine", "archs": [arch, "resnet"],
                                    "strategies": ["fmsgd"], "seeds": [0]}}
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(profile))
    return path


def test_a_profile_takes_the_user_model_and_tensor_file(tmp_path, user_pkg, user_tensor):
    from mfcbench.pipeline.cells import expand
    from mfcbench.pipeline.checks import check_cells
    from mfcbench.pipeline.schema import load_config
    from mfcbench.train.runner import run_cell

    config = load_config(_user_profile(tmp_path, str(user_tensor)))
    assert check_cells(config) == []
    cell = next(c for c in expand(config) if c.arch == ARCH)
    prepare("mine", 8, config["data_root"], path=user_tensor)
    record = run_cell(cell.config, task=cell.task, dataset=cell.dataset, arch=cell.arch, strategy=cell.strategy,
                      seed=cell.seed, out_dir=tmp_path / "results" / cell.relpath(), progress=False, log=lambda _: None)
    assert record["status"] == "ok" and record["cell"]["dataset"] == "mine"

    problems = check_cells(load_config(_user_profile(tmp_path, str(tmp_path / "gone.pt"), "nopkg.x:tiny")))
    assert any("cannot import module 'nopkg.x'" in p for p in problems), problems
    assert any("prepare_options.path" in p and "gone.pt does not exist" in p for p in problems), problems


def test_registered_user_models_are_listed_in_help(capsys):
    from mfcbench.models import MODELS

    with MODELS.temporarily("my_own_net", lambda *a, **k: None):
        with pytest.raises(SystemExit):
            main(["train", "--help"])
    assert "my_own_net" in capsys.readouterr().out


@pytest.mark.slow
def test_user_model_and_tensor_file_through_python_m_mfcbench(tmp_path, user_pkg, user_tensor):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(user_pkg), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    cell = tmp_path / "cell"
    proc = subprocess.run([sys.executable, "-m", "mfcbench", "train", "--task", "denoise", "--dataset",
                           str(user_tensor), "--arch", ARCH, "--strategy", "fmsgd", "--out", str(cell),
                           "--set", *TINY], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _metrics(cell)["status"] == "ok"
    proc = subprocess.run([sys.executable, "-m", "mfcbench", "train", "--task", "denoise", "--dataset",
                           str(user_tensor), "--arch", "mfcb_user_nets.nets:nothing", "--strategy", "fmsgd",
                           "--out", str(tmp_path / "bad")], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2 and "has no attribute 'nothing'" in proc.stderr
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_user_model_and_tensor_file_through_a_snakemake_profile(tmp_path, user_pkg, user_tensor):
    """The pipeline prepares the user's file under the profile's name and trains the user's builder
    (a cell folder named after `module:function`), then gathers the table."""
    import shutil

    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(ROOT / "Snakefile", work / "Snakefile")
    for name in ("workflow", "mfcbench"):
        shutil.copytree(ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
    profile = yaml.safe_load(_user_profile(tmp_path, str(user_tensor)).read_text())
    profile.update(data_root="data", use_dvc="never")
    profile["tables"]["table4"]["archs"] = [ARCH]
    (work / "mine.yaml").write_text(yaml.safe_dump(profile))
    env = {**os.environ, "PYTHONPATH": str(user_pkg), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "results/mine/table4.csv", "--cores", "1",
                           "--configfile", "mine.yaml"], cwd=work, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    rows = (work / "results" / "mine" / "table4.csv").read_text().splitlines()
    assert len(rows) == 2 and f",mine,{ARCH},fmsgd," in rows[1] and ",ok," in rows[1]
    assert (work / "data" / "prepared" / "mine" / "8" / "checksum.txt").is_file()
    torch.save(torch.rand(10, 1, 8, 8), user_tensor)  # the user's file changes: it is prepared again
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "results/mine/table4.csv", "--cores", "1",
                           "--configfile", "mine.yaml"], cwd=work, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0 and "prepare mine at 8px" in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-3000:]
