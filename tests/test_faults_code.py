"""Fault classes of issue 20 around code and concurrent runs: every cell records the training code that
made it and the report flags cells trained by other training code; `dvc repro` refuses while a
Snakemake run holds the data; the workflow refuses to run from a subfolder; a YAML syntax error in a
profile names its file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch
import yaml

from mfcbench.pipeline.gather import gather, stale_code_cells
from mfcbench.train import manifest, runner

TINY = {"image_size": 16, "levels": 2, "batch_size": 2, "iterations": [1, 1], "lr": 1e-3, "val_size": 4,
        "val_every": 2, "checkpoint_every": 2, "model": {"width": 0.125}, "threads": 1}
CELL = "table4/denoise/skimage/resnet/sgd/seed0"


def _trained_cell(tmp_path: Path) -> Path:
    out = tmp_path / "results" / "p" / CELL
    out.mkdir(parents=True)
    (out / "cell.yaml").write_text(yaml.safe_dump(TINY))
    g = torch.Generator().manual_seed(0)
    runner.run_cell(out / "cell.yaml", task="denoise", arch="resnet", strategy="sgd", out_dir=out, device="cpu",
                    train_images=torch.rand(8, 3, 16, 16, generator=g), val_images=torch.rand(4, 3, 16, 16, generator=g),
                    progress=False, log=lambda m: None)
    return out


def test_code_digest_covers_the_training_modules(tmp_path):
    for pkg in manifest.TRAINING_PACKAGES:
        (tmp_path / pkg / "sub").mkdir(parents=True)
        (tmp_path / pkg / "sub" / "m.py").write_text("x = 1\n")
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "r.py").write_text("y = 1\n")
    before = manifest.code_digest(tmp_path)
    (tmp_path / "report" / "r.py").write_text("y = 2\n")  # not training code
    assert manifest.code_digest(tmp_path) == before
    (tmp_path / "train" / "sub" / "m.py").write_text("x = 2\n")  # e.g. the learning-rate schedule
    assert manifest.code_digest(tmp_path) != before
    assert manifest.training_code() == manifest.code_digest() and len(manifest.training_code()) == 64


def test_cell_records_training_code_and_gather_carries_it(tmp_path):
    out = _trained_cell(tmp_path)
    recorded = json.loads((out / "metrics.json").read_text())["manifest"]
    assert recorded["training_code"] == manifest.training_code()
    cells, _ = gather([out])
    assert cells["training_code"].tolist() == [manifest.training_code()]
    assert stale_code_cells([out], manifest.training_code()) == []
    assert stale_code_cells([out], "0" * 64) == [(out, manifest.training_code(), recorded["git_commit"])]


def _results(tmp_path: Path, current: str) -> tuple[Path, dict]:
    results_dir = tmp_path / "results" / "p"
    results_dir.mkdir(parents=True)
    (results_dir / "manifest.json").write_text(json.dumps({"profile": "p", "training_code": current}))
    table = pd.DataFrame({"table": "table4", "arch": "resnet", "strategy": ["sgd", "sgd", "fmsgd"], "variant": "",
                          "seed": [0, 1, 0], "dataset": "skimage", "headline_metric": "mse", "mse": [0.1, 0.2, 0.3],
                          "status": "ok", "config_hash": "c", "git_commit": ["a" * 40, "b" * 40, "b" * 40],
                          "training_code": ["1" * 64, current, current]})
    return results_dir, {"table4": table}


def test_report_flags_cells_trained_by_other_code(tmp_path):
    from mfcbench.report.evidence import cells_frame
    from mfcbench.report.markdown import provenance_section, stale_code_line

    results_dir, results = _results(tmp_path, "2" * 64)
    warning = stale_code_line(results_dir, results)
    assert "Warning: 1 of 3 cells were trained by other training code" in warning
    assert "digest 111111111111, commit aaaaaaaaaaaa" in warning and "--stale-code" in warning
    provenance = provenance_section(results_dir, results, "p")
    assert "2 of 3 cells trained by the current training code (digest `222222222222`)" in provenance
    assert "1 cells were trained by other training code (digest `111111111111`, commit `aaaaaaaaaaaa`)" in provenance
    assert cells_frame(results, [])["training_code"].tolist() == ["1" * 64, "2" * 64, "2" * 64]
    results["table4"]["training_code"] = "2" * 64
    assert stale_code_line(results_dir, results) == ""
    results["table4"] = results["table4"].drop(columns="training_code")  # cells from before digests were recorded
    assert "3 of 3 cells" in stale_code_line(results_dir, results)


def test_stale_code_lists_the_cells_to_force(tmp_path, monkeypatch):
    from mfcbench.cli import grid as grid_cli
    from mfcbench.pipeline import grid

    config = grid.load_config(Path(grid.ROOT) / "workflow" / "config" / "tiny.yaml")
    config["results_dir"] = str(tmp_path / "results")
    cells = [tmp_path / "results" / config["profile"] / c.relpath() for c in grid.iter_cells(config)][:3]
    for i, cell in enumerate(cells):
        cell.mkdir(parents=True)
        digest = manifest.training_code() if i == 0 else "9" * 64
        (cell / "metrics.json").write_text(json.dumps({"status": "failed" if i == 2 else "ok",
                                                       "manifest": {"training_code": digest}}))
    assert grid_cli.stale_code_metrics(config) == [f"{cells[1]}/metrics.json"]
