"""The cost model (mfcbench/measure/costmodel.py): fit, prediction, profile totals, check against a run."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from mfcbench.core.cell import Cell
from mfcbench.measure import costmodel
from mfcbench.strategies import build_strategy

TRUE = {"overhead": 0.004, "per_call": 0.002, "per_pixel": 1e-6}
TINY = {"image_size": 16, "levels": 2, "batch_size": 1, "iterations": [3, 3], "model": {"width": 0.125}, "threads": 1}


def true_seconds(calls) -> float:
    return TRUE["overhead"] + TRUE["per_call"] * len(calls) + TRUE["per_pixel"] * sum(b * s * s for s, b in calls)


def rate_row(calls, arch="resnet", seconds=None, **extra) -> dict:
    return {"kind": "step", "status": "ok", "arch": arch, "device": "cpu", "threads": "1",
            "meshes": ";".join(f"{s}:{b}" for s, b in calls), "parts": str(len(calls)),
            "step_seconds": str(seconds if seconds is not None else true_seconds(calls)), **extra}


CALLS = [((32, 30),), ((64, 30),), ((32, 4), (16, 12), (8, 24), (4, 32)), ((64, 4), (32, 12), (16, 24), (8, 32)),
         ((16, 8), (8, 24), (4, 48)), ((8, 16), (4, 64))]


def test_fit_recovers_the_step_model_from_hand_made_rows():
    rates = costmodel.fit_rates([rate_row(c) for c in CALLS] + [{"kind": "schedule", "status": "ok"},
                                                                rate_row(((8, 1),), status="failed")])
    fit = rates.fit_for("resnet", "cpu", 1)
    assert fit.rows == len(CALLS) and fit.batched
    for key in TRUE:
        assert getattr(fit, key) == pytest.approx(TRUE[key], rel=1e-6)
    new = ((128, 2), (64, 2))
    assert rates.step_seconds("resnet", "cpu", new, threads=1) == pytest.approx(true_seconds(new), rel=1e-6)
    assert rates.step_seconds("unet", "cpu", new) is None and rates.devices() == ["cpu"]


def test_a_measured_step_is_used_as_it_is():
    rows = [rate_row(c) for c in CALLS] + [rate_row(((40, 3),), seconds=1.5), rate_row(((40, 3),), seconds=2.5)]
    rates = costmodel.fit_rates(rows)
    assert rates.step_seconds("resnet", "cpu", ((40, 3),)) == pytest.approx(2.0)  # the median of its rows


def test_phase_calls_group_the_parts_of_one_mesh_unless_the_model_has_batch_statistics():
    cfg = {"levels": 3, "batch_size": 1, "batch_growth": 2, "iterations": [1, 1, 1], "image_size": 32}
    (phase,) = build_strategy("msgd", costmodel_config(cfg)).phases()
    assert costmodel.phase_calls(phase, 32) == ((8, 2 + 4), (16, 1 + 2), (32, 1))
    assert costmodel.phase_calls(phase, 32, batched=False) == ((8, 2), (8, 4), (16, 1), (16, 2), (32, 1))


def costmodel_config(raw: dict) -> dict:
    from mfcbench.measure.scaling import light_config

    return light_config(raw)


def cell(task: str, strategy: str, config: dict) -> Cell:
    return Cell(task=task, dataset="skimage", arch="resnet", strategy=strategy, config=config)


def test_predict_cell_sums_iterations_times_step_time_per_phase():
    rates = costmodel.fit_rates([rate_row(c) for c in CALLS])
    sgd = costmodel.predict_cell(cell("denoise", "sgd", TINY), rates)
    assert sgd == pytest.approx(6 * true_seconds(((16, 3),)), rel=1e-6)
    fm_cfg = dict(TINY, iterations=[4, 2])
    fm = costmodel.predict_cell(cell("denoise", "fmsgd", fm_cfg), rates)
    assert fm == pytest.approx(4 * true_seconds(((8, 2),)) + 2 * true_seconds(((16, 1), (8, 3))), rel=1e-6)
    stopped = costmodel.predict_cell(cell("denoise", "fmsgd", fm_cfg), rates, executed={1: 4, 0: 1})
    assert stopped == pytest.approx(fm - true_seconds(((16, 1), (8, 3))), rel=1e-6)
    sr = costmodel.predict_cell(cell("superres", "sgd", TINY), rates)  # the x2 model sees the 8 px LR image
    assert sr == pytest.approx(6 * true_seconds(((8, 3),)), rel=1e-6)


def test_predict_profile_sums_tables_and_names_networks_without_rates():
    rates = costmodel.fit_rates([rate_row(c) for c in CALLS])
    cells = [SimpleNamespace(table="table4", task="denoise", arch=arch, strategy="sgd", config=TINY)
             for arch in ("resnet", "resnet", "unet")]
    cells.append(SimpleNamespace(table="table5", task="denoise", arch="resnet", strategy="msgd",
                                 config=dict(TINY, early_stop={"patience": 2})))
    cells.append(SimpleNamespace(table="table7", task="denoise", arch="unet", strategy="sgd", config=TINY))
    prediction = costmodel.predict_profile(cells, rates)
    one_sgd = 6 * true_seconds(((16, 3),))
    assert prediction["tables"]["table4"]["seconds"] == pytest.approx(2 * one_sgd, rel=1e-6)
    assert prediction["total_seconds"] == pytest.approx(2 * one_sgd + 6 * true_seconds(((16, 1), (8, 3))), rel=1e-6)
    assert prediction["missing_archs"] == ["unet"] and prediction["missing_cells"] == 2
    text = costmodel.format_prediction(prediction, jobs=2)
    assert "table4" in text and "not counted: 2 cells of unet" in text and "2 cells at once" in text
    assert text.split("table7")[1].split("(")[0].split()[-1] == "n/a"  # no rates for any of its cells
    assert "up to" in text.split("table5")[1].split("\n")[0] and "up to" not in text.split("table4")[1].split("\n")[0]
    assert costmodel.human_seconds(7200) == "2.0 h" and costmodel.human_seconds(3 * 86400) == "3.0 days"


def write_cell(root, name, strategy, train_seconds, levels_run, config=TINY):
    cell = root / "table4" / "denoise" / "skimage" / "resnet" / strategy / name
    cell.mkdir(parents=True)
    record = {"status": "ok", "cell": {"task": "denoise", "dataset": "skimage", "arch": "resnet", "strategy": strategy,
                                       "seed": int(name[4:])},
              "config": config, "train_seconds": train_seconds, "seconds": 2 * train_seconds, "iterations": len(levels_run),
              "manifest": {"device": "cpu: test", "threads": 1}}
    (cell / "metrics.json").write_text(json.dumps(record))
    lines = ["iteration,level"] + [f"{i + 1},{level}" for i, level in enumerate(levels_run)]
    (cell / "curve.csv").write_text("\n".join(lines) + "\n")


def test_cost_check_compares_recorded_and_predicted_seconds(tmp_path):
    rates = costmodel.fit_rates([rate_row(c) for c in CALLS])
    step = true_seconds(((16, 3),))
    write_cell(tmp_path, "seed0", "sgd", 6 * step * 1.25, [0] * 6)
    write_cell(tmp_path, "seed1", "sgd", 3 * step / 0.5, [0] * 3)  # stopped early after 3 steps
    (tmp_path / "table4" / "failed").mkdir()
    (tmp_path / "table4" / "failed" / "metrics.json").write_text(json.dumps({"status": "failed"}))
    rows = costmodel.cost_check(tmp_path, rates)
    assert [r["relative_error"] for r in rows] == pytest.approx([1 / 1.25 - 1, 0.5 - 1])
    summary = costmodel.summary(rows)
    assert summary["cells"] == 2 and summary["median_abs_relative_error"] == pytest.approx((0.2 + 0.5) / 2)
    assert summary["outside_training_share"] == pytest.approx(0.5)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        costmodel.cost_check(tmp_path / "nowhere", rates)


def test_cost_check_command_and_missing_rates_file(tmp_path, capsys):
    from mfcbench.cli import measure
    from mfcbench.measure.suites import write_rows

    write_rows(tmp_path / "rates.csv", [rate_row(c) for c in CALLS])
    write_cell(tmp_path / "run", "seed0", "sgd", 6 * true_seconds(((16, 3),)), [0] * 6)
    assert measure.main(["cost-check", "--results-dir", str(tmp_path / "run"), "--rates", str(tmp_path / "rates.csv"),
                         "--out", str(tmp_path / "check.csv")]) == 0
    assert "1 of 1 cells predicted; median |relative error| 0.0%" in capsys.readouterr().out
    assert measure.main(["cost-check", "--results-dir", str(tmp_path / "run")]) == 2
    assert "scaling.csv does not exist" in capsys.readouterr().err


def test_one_tiny_real_cell_is_predicted_from_rates_measured_here(tmp_path):
    from mfcbench.measure.scaling import Setting, scaling_rows
    from mfcbench.train.runner import run_cell

    config = dict(TINY, iterations=[6, 6], val_every=100, checkpoint_every=100, val_size=2)
    images = torch.rand(10, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    out = tmp_path / "run" / "table4" / "denoise" / "memory" / "resnet" / "msgd" / "seed0"
    record = run_cell(config, task="denoise", arch="resnet", strategy="msgd", out_dir=out, device="cpu",
                      train_images=images[:8], val_images=images[8:], progress=False, log=lambda _m: None)
    assert record["status"] == "ok"
    setting = Setting(task="denoise", arch="resnet", configs={"sgd": config, "msgd": config}, table="table4")
    rates = costmodel.fit_rates(scaling_rows([setting], [8, 16], threads=torch.get_num_threads(), repeats=3))
    (row,) = costmodel.cost_check(tmp_path / "run", rates)
    assert row["status"] == "ok" and row["iterations"] == 12
    assert abs(row["relative_error"]) < 5  # same machine, same step: the right order (a unit slip is 1000x)


def test_predict_command_prints_a_profiles_time_per_table_and_device(tmp_path, capsys):
    from mfcbench.cli import measure
    from mfcbench.measure.suites import write_rows

    write_rows(tmp_path / "cpu.csv", [rate_row(c) for c in CALLS])
    write_rows(tmp_path / "gpu.csv", [{**rate_row(c), "device": "cuda"} for c in CALLS])
    assert measure.main(["predict", "--config", "workflow/config/tiny.yaml", "--rates", str(tmp_path / "cpu.csv"),
                         "--rates", str(tmp_path / "gpu.csv")]) == 0
    out = capsys.readouterr().out
    assert "on cpu (rates" in out and "on cuda (rates" in out and out.count("table4") == 2
    assert measure.default_rate_files({"profile": "tiny", "results_dir": "results"})[0].parts[-3:] == (
        "results", "tiny", "scaling.csv")
    assert measure.main(["predict", "--config", "workflow/config/tiny.yaml", "--rates", str(tmp_path / "no.csv")]) == 2
