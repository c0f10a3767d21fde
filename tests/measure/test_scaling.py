"""The resolution-scaling study (mfcbench/measure/scaling.py), its command and its figure, at toy sizes."""

from __future__ import annotations

import csv
import time
from fractions import Fraction

import pytest
import torch

from mfcbench.measure import scaling

TINY = {"levels": 2, "batch_size": 1, "iterations": [3, 3], "model": {"width": 0.125}}


def tiny_setting(arch: str = "resnet", task: str = "denoise") -> scaling.Setting:
    return scaling.Setting(task=task, arch=arch, table="table4",
                           configs={"sgd": TINY, "msgd": TINY, "fmsgd": dict(TINY, iterations=[4, 2])})


def test_fixed_sampler_cycles_its_images_and_corrupts_them_per_step():
    from mfcbench.strategies.sampling import FixedSampler
    from mfcbench.tasks import build_task

    images = torch.rand(3, 3, 8, 8)
    sampler = FixedSampler(images, build_task("denoise", {}, seed=0), torch.device("cpu"))
    drawn = sampler.images(5)
    assert torch.equal(drawn[3], images[0]) and torch.equal(drawn[4], images[1])
    first, second = sampler.batch(drawn), sampler.batch(drawn)
    assert first.inputs.shape == (5, 3, 8, 8)
    assert not torch.equal(first.inputs, second.inputs)  # fresh noise each step, as in training


def test_step_phases_give_one_step_per_strategy_and_one_per_full_multiscale_level():
    cfg = scaling.light_config(dict(TINY, levels=3, iterations=[5, 0, 0], image_size=16))
    assert [level for level, _ in scaling.step_phases("sgd", cfg)] == [0]
    assert [level for level, _ in scaling.step_phases("msgd", cfg)] == [0]
    assert [level for level, _ in scaling.step_phases("fmsgd", cfg)] == [2, 1, 0]  # every level, despite zeros
    (_, sgd), = scaling.step_phases("sgd", cfg)
    assert sgd.draws[0].batch == 1 + 2 + 4  # the matched SGD batch of the profile


def test_rows_time_every_step_and_price_the_schedules():
    rows = scaling.scaling_rows([tiny_setting()], [8], threads=1, repeats=2, max_seconds=0.5)
    steps = [r for r in rows if r["kind"] == "step"]
    schedules = {r["strategy"]: r for r in rows if r["kind"] == "schedule"}
    assert [(r["strategy"], r["level"]) for r in steps] == [("sgd", 0), ("msgd", 0), ("fmsgd", 1), ("fmsgd", 0)]
    assert all(r["status"] == "ok" and r["step_seconds"] > 0 and r["runs"] >= 2 for r in steps)
    sgd, msgd = steps[0], steps[1]
    assert (sgd["calls"], sgd["pixels"], sgd["meshes"]) == (1, 3 * 64, "8:3")
    # Multiscale-SGD, 2 levels, N = (1, 2): +l0(1) -l1(1) +l1(2): two meshes, one call each
    assert (msgd["calls"], msgd["parts"], msgd["pixels"]) == (2, 3, 64 + 3 * 16)
    assert msgd["wu_per_step"] == pytest.approx(1 * (1 + 0.25) + 2 * 0.25)
    assert msgd["wu_ratio"] == pytest.approx(3 / 1.75)
    assert msgd["time_ratio"] == pytest.approx(sgd["step_seconds"] / msgd["step_seconds"])
    fm = schedules["fmsgd"]  # 4 steps at level 1, 2 steps at level 0
    by_level = {r["level"]: r["step_seconds"] for r in steps if r["strategy"] == "fmsgd"}
    assert fm["schedule_seconds"] == pytest.approx(4 * by_level[1] + 2 * by_level[0])
    assert fm["schedule_wu"] == pytest.approx(float(4 * Fraction(2) / 4 + 2 * Fraction(7, 4)))
    assert schedules["sgd"]["schedule_seconds"] == pytest.approx(6 * sgd["step_seconds"])
    assert schedules["sgd"]["time_ratio"] == 1.0 and "device" in fm and "cpu_model" in fm


def test_a_failing_row_is_recorded_and_the_study_goes_on():
    rows = scaling.scaling_rows([tiny_setting()], [7, 8], threads=1, repeats=1, max_seconds=0.2)
    failed = [r for r in rows if r["size"] == 7 and r["kind"] == "step"]
    assert failed and all(r["status"] == "failed" and "image_size 7" in r["error"] for r in failed)
    assert all(r["status"] == "ok" for r in rows if r["size"] == 8)
    assert {r["status"] for r in rows if r["size"] == 7 and r["kind"] == "schedule"} == {
        "incomplete: a step of this schedule was not measured"}


def test_rows_past_the_deadline_are_skipped_not_measured_and_progress_sees_each_size():
    seen = []
    rows = scaling.scaling_rows([tiny_setting()], [8, 16], threads=1, deadline=time.monotonic() - 1,
                                progress=lambda so_far: seen.append(len(so_far)))
    assert {r["status"] for r in rows if r["kind"] == "step"} == {scaling.SKIPPED}
    assert seen == [7, 14]  # 4 steps + 3 schedules per size, handed over as they come


def test_measure_scaling_command_writes_the_rows(tmp_path, monkeypatch):
    from mfcbench.cli import measure

    out = tmp_path / "scaling.csv"
    assert measure.main(["scaling", "--config", "workflow/config/tiny.yaml", "--sizes", "8",
                         "--quick", "--out", str(out)]) == 0  # default: Tables 4 and 5, those the profile has
    rows = list(csv.DictReader(out.open()))
    assert {(r["kind"], r["strategy"]) for r in rows} >= {("step", "sgd"), ("step", "msgd"), ("schedule", "fmsgd")}
    assert {r["arch"] for r in rows} == {"resnet"} and {r["size"] for r in rows} == {"8"}
    assert {r["threads"] for r in rows} == {"1"}  # the profile's threads_per_cell
    from mfcbench.cli.measure import scaling_settings  # a profile without Tables 4 and 5: its own tables

    deep = {"tables": {"table7": {"task": "denoise", "archs": ["resnet18"], "strategies": ["sgd"], "seeds": [0]}}}
    monkeypatch.setattr("mfcbench.pipeline.cells.cell_config", lambda config, table, arch, strategy: {"levels": 2})
    assert [(s.table, s.arch) for s in scaling_settings(deep)] == [("table7", "resnet18")]
    with pytest.raises(SystemExit, match="valid choices: table4"):
        measure.main(["scaling", "--config", "workflow/config/tiny.yaml", "--tables", "table99", "--out", str(out)])


def test_scaling_figure_draws_ratios_and_writes_its_data(tmp_path):
    import pandas as pd

    from mfcbench.figures.scaling import draw_scaling, scaling_data

    rows = [{"kind": "schedule", "task": task, "arch": arch, "size": size, "strategy": strategy, "level": "all",
             "time_ratio": wu * size / 256, "wu_ratio": wu, "status": "ok", "device": "cpu"}
            for task, arch in (("denoise", "unet"), ("superres", "espcn")) for size in (32, 64)
            for strategy, wu in (("sgd", 1.0), ("msgd", 6.49), ("fmsgd", 66.8))]
    rows.append({**rows[1], "status": "failed", "time_ratio": ""})
    pd.DataFrame(rows).to_csv(tmp_path / "scaling.csv", index=False)
    out = draw_scaling(tmp_path / "scaling.csv", tmp_path / "fig" / "scaling.png")
    assert out.stat().st_size > 10_000
    data = pd.read_csv(tmp_path / "fig" / "scaling.csv")
    assert set(data["strategy"]) == {"msgd", "fmsgd"} and len(data) == 8  # SGD and the failed row left out
    with pytest.raises(ValueError, match="missing: time_ratio"):
        scaling_data(pd.DataFrame(rows).drop(columns="time_ratio"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")
def test_without_cuda_the_rows_say_not_measured():
    rows = scaling.scaling_rows([tiny_setting()], [8], device="cuda")
    assert {r["status"] for r in rows if r["kind"] == "step"} == {"not measured: no CUDA device"}
    assert {r["time_ratio"] for r in rows} == {""}
