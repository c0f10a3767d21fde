"""A tiny trained cell in a results tree, shared by the fault tests on stale data and stale code."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from mfcbench.train import runner

TINY = {"image_size": 16, "levels": 2, "batch_size": 2, "iterations": [1, 1], "lr": 1e-3, "val_size": 4,
        "val_every": 2, "checkpoint_every": 2, "model": {"width": 0.125}, "threads": 1}
CELL = "table4/denoise/skimage/resnet/sgd/seed0"


def trained_cell(tmp_path: Path) -> Path:
    """results/p/<CELL> trained for one step on seeded random images; returns the cell folder."""
    out = tmp_path / "results" / "p" / CELL
    out.mkdir(parents=True)
    (out / "cell.yaml").write_text(yaml.safe_dump(TINY))
    g = torch.Generator().manual_seed(0)
    runner.run_cell(out / "cell.yaml", task="denoise", arch="resnet", strategy="sgd", out_dir=out, device="cpu",
                    train_images=torch.rand(8, 3, 16, 16, generator=g), val_images=torch.rand(4, 3, 16, 16, generator=g),
                    progress=False, log=lambda m: None)
    return out
