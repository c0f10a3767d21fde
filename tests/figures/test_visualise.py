"""Figures 1-2, 9-14 and 15 (`python -m mfcbench visualise`): the data behind each figure is what
the code runs (the strategies' phases, the cells' checkpoints), and every figure writes a PNG."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from mfcbench.cli import main as cli_main
from mfcbench.core.cell import Cell
from mfcbench.figures import visualise as vis
from mfcbench.pipeline.cells import cell_config
from mfcbench.pipeline.schema import load_config
from mfcbench.strategies import build_strategy
from mfcbench.train.config import resolve
from mfcbench.train.runner import run_cell

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG"


def _phases_from(frame: pd.DataFrame) -> list[tuple]:
    """(level, iterations, ((batch, levels), ...)) per phase, rebuilt from the figure's CSV rows."""
    out = []
    for _, phase in frame.groupby("phase", sort=True):
        draws = tuple((int(d["batch"].iloc[0]), tuple(int(v) for v in d["level"]))
                      for _, d in phase.groupby("draw", sort=True))
        out.append((int(phase["phase_level"].iloc[0]), int(phase["iterations"].iloc[0]), draws))
    return out


@pytest.mark.parametrize("fig, strategy", [("fig1", "msgd"), ("fig2", "fmsgd")])
def test_schedule_figures_plot_the_strategys_phases(tmp_path, fig, strategy):
    cfg = resolve({"image_size": 32, "levels": 4, "batch_size": 2, "iterations": [8, 4, 2, 1]})
    frame = vis.schedule_figure(fig, cfg, tmp_path / f"{fig}.png", {"profile": "t", "table": "table4"})
    expected = [(p.level, p.iterations, tuple((d.batch, d.levels) for d in p.draws))
                for p in build_strategy(strategy, cfg).phases()]
    assert _phases_from(frame) == expected
    assert set(frame["mesh"]) == {32 // 2**j for j in range(4)}
    signs = frame.groupby(["phase", "draw"])["sign"].apply(list)
    assert all(s in ([1], [1, -1]) for s in signs)  # +l_j, or the telescoping +l_j - l_{j+1}
    assert (tmp_path / f"{fig}.png").read_bytes().startswith(PNG)


def test_schedule_command_reads_the_profile(tmp_path):
    out = tmp_path / "fig2.png"
    assert cli_main(["visualise", "fig2", "--results-dir", str(tmp_path / "none"),
                     "--config", str(ROOT / "workflow/config/default.yaml"), "--out", str(out)]) == 0
    frame = pd.read_csv(out.with_suffix(".csv"))
    config = load_config(ROOT / "workflow/config/default.yaml")
    cfg = resolve(cell_config(config, "table4", "unet", "fmsgd"))
    assert list(frame.drop_duplicates("phase")["iterations"]) == [p.iterations for p in build_strategy("fmsgd", cfg).phases()]
    assert set(frame["table"]) == {"table4"} and out.read_bytes().startswith(PNG)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny Table 4 (ResNet, SGD + Multiscale-SGD, no Full-Multiscale cell) trained into a results layout."""
    root = tmp_path_factory.mktemp("results")
    g = torch.Generator().manual_seed(5)
    train, val = torch.rand(8, 1, 8, 8, generator=g), torch.rand(4, 1, 8, 8, generator=g)
    profile = {"profile": "t", "datasets": {"memory": {"image_size": 8}},
               "defaults": {"levels": 2, "batch_size": 1, "iterations": [2, 2], "val_size": 4, "val_every": 2,
                            "lr": 1e-3, "model": {"width": 0.25}},
               "tables": {"table4": {"task": "denoise", "dataset": "memory", "archs": ["resnet"],
                                     "strategies": ["sgd", "msgd"], "seeds": [0]}}}
    cells = []
    for strategy in ("sgd", "msgd"):
        cfg = {**profile["defaults"], "image_size": 8, "threads": 1}
        cell = Cell(table="table4", task="denoise", dataset="memory", arch="resnet", strategy=strategy, seed=0, config=cfg)
        run_cell(cfg, task="denoise", arch="resnet", strategy=strategy, out_dir=root / cell.relpath(),
                 dataset="memory", train_images=train, val_images=val, device="cpu", progress=False, log=lambda m: None)
        cells.append(cell)
    return root, cells, val


def test_prediction_grid_from_trained_cells(tmp_path, trained):
    root, cells, val = trained
    out = tmp_path / "fig9.png"
    frame = vis.prediction_figure("fig9", cells, root, out, "t", images=2, val_images={"memory": val})
    assert list(frame.columns) == vis.PREDICTION_COLUMNS
    assert len(frame) == 2 * 4  # two images x (input, sgd, msgd, fmsgd)
    assert list(frame["column"]) == ["input", "sgd", "msgd", "fmsgd"] * 2 and list(frame["image"].unique()) == [0, 1]
    done = frame[frame["column"].isin(["sgd", "msgd"])]
    assert (done["status"] == "ok").all() and done["mse"].notna().all() and done["inputs_match"].all()
    assert done["checkpoint"].str.endswith("checkpoint.pt").all() and (done["iterations"] == 4).all()
    assert (frame.loc[frame["column"] == "fmsgd", "status"] == "no cell in this profile").all()
    assert out.read_bytes().startswith(PNG)
    # the SGD cell's validation MSE is the mean of its per-image MSEs over the whole validation batch
    whole = vis.prediction_figure("fig9", cells, root, tmp_path / "all.png", "t", images=4, val_images={"memory": val})
    import json

    recorded = json.loads((root / cells[0].relpath() / "metrics.json").read_text())["metrics"]["val_mse"]
    assert whole.loc[whole["column"] == "sgd", "mse"].mean() == pytest.approx(recorded, rel=1e-4)


def test_prediction_figure_without_cells_says_so(tmp_path):
    frame = vis.prediction_figure("fig11", [], tmp_path, tmp_path / "fig11.png", "t")
    assert list(frame["status"]) == ["no cells"] and (tmp_path / "fig11.png").read_bytes().startswith(PNG)


def test_feature_maps_without_checkpoints(tmp_path):
    cfg = resolve({"image_size": 8, "levels": 1, "iterations": [1], "val_size": 6, "model": {"width": 0.125}})
    sources = [vis.FeatureSource(Cell(task="denoise", dataset="memory", arch=arch, strategy=None, table="table4",
                                      config=cfg)) for arch in vis.FEATURE_ARCHS]
    val = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    frame = vis.feature_figure(tmp_path / "fig15.png", sources, "t", images=3, val_images={"memory": val})
    assert list(frame.columns) == vis.FEATURE_COLUMNS and len(frame) == 3 * 3
    assert list(frame["row"].unique()) == ["input", "MFC-ResNet-18", "ResNet-18"]
    nets = frame[frame["row"] != "input"]
    assert not nets["trained"].any() and nets["source"].str.contains("fresh initialisation").all()
    assert frame["roughness"].between(0, 3).all() and (tmp_path / "fig15.png").read_bytes().startswith(PNG)


def test_feature_command_on_a_profile_without_table7(tmp_path):
    profile = yaml.safe_load((ROOT / "workflow/config/tiny.yaml").read_text())
    profile["data_root"] = str(tmp_path / "data")
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(profile))
    out = tmp_path / "fig15.png"
    assert cli_main(["visualise", "fig15", "--results-dir", str(tmp_path / "results"), "--config",
                     str(tmp_path / "p.yaml"), "--out", str(out), "--images", "2"]) == 0
    frame = pd.read_csv(out.with_suffix(".csv"))
    assert set(frame["table"]) == {"table4"} and not frame["trained"].fillna(False).astype(bool).any()


def test_roughness_is_one_for_white_noise_and_small_when_smooth():
    noise = torch.randn(4, 64, 64, generator=torch.Generator().manual_seed(0))
    ramp = torch.linspace(0, 1, 64).expand(4, 64, 64)
    assert vis.roughness(noise).mean() == pytest.approx(1.0, abs=0.05) and vis.roughness(ramp).max() < 0.01


def test_figures_rebuild_cells_with_the_runners_builder():
    """One cell builder: the figures call `mfcbench.train.cell.build_cell` (no hand-made seeding or
    validation batch of their own)."""
    from mfcbench.train import cell as cell_mod

    assert vis.build_cell is cell_mod.build_cell
    assert not hasattr(vis, "validation_batch") and not hasattr(vis, "build_network") and not hasattr(vis, "seed_for")
