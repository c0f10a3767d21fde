"""The speed knobs (mfcbench/measure/knobs.py): N0's price per #WU, a compile that fails, threads per job
versus jobs, and the command, at toy sizes."""

from __future__ import annotations

import csv

import pytest
import torch
from test_scaling import tiny_setting

from mfcbench.measure import knobs


def test_n0_rows_price_each_first_batch_per_work_unit_and_restore_the_config():
    setting = tiny_setting()
    before = dict(setting.configs["msgd"])
    rows = knobs.n0_rows(setting, 8, threads=1, repeats=2, max_seconds=0.2, values=(1, 2))
    assert [r["value"] for r in rows] == ["1", "2"] and {r["status"] for r in rows} == {"ok"}
    assert rows[1]["wu_per_step"] == pytest.approx(2 * rows[0]["wu_per_step"])  # every level's batch doubles
    for row in rows:
        assert row["seconds_per_wu"] == pytest.approx(row["step_seconds"] / row["wu_per_step"])
    assert setting.configs["msgd"] == before


def test_a_compile_that_fails_is_a_row_with_its_error_and_the_model_stays_eager(monkeypatch):
    def refuse(model, *args, **kwargs):
        raise RuntimeError("inductor: no C++ compiler")

    monkeypatch.setattr(torch, "compile", refuse)
    setting = tiny_setting()
    rows = knobs.compile_rows(setting, 8, threads=1, repeats=2, max_seconds=0.2)
    assert [(r["strategy"], r["value"], r["status"]) for r in rows] == [
        ("sgd", "eager", "ok"), ("sgd", "compiled", "failed"), ("msgd", "eager", "ok"), ("msgd", "compiled", "failed")]
    assert "no C++ compiler" in rows[1]["error"] and rows[1]["step_seconds"] == ""
    assert isinstance(setting.model, torch.nn.Module) and not hasattr(setting.model, "_orig_mod")


def test_threads_rows_time_one_two_thread_job_and_two_one_thread_jobs_at_once():
    rows = knobs.threads_rows(tiny_setting(), 8, seconds=0.3, cores=2)
    assert [r["value"] for r in rows] == ["1 job x 2 threads", "2 jobs x 1 thread"]
    assert all(r["status"] == "ok" and r["steps_per_second"] > 0 for r in rows), rows


def test_measure_knobs_command_writes_rows_and_names_valid_knobs(tmp_path):
    from mfcbench.cli import measure

    out = tmp_path / "knobs.csv"
    assert measure.main(["knobs", "--config", "workflow/config/tiny.yaml", "--sizes", "8", "--quick",
                         "--knobs", "n0", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [(r["knob"], r["arch"], r["value"]) for r in rows] == [("n0", "resnet", "2"), ("n0", "resnet", "4")]
    assert {r["threads"] for r in rows} == {"1"} and all(float(r["seconds_per_wu"]) > 0 for r in rows)
    with pytest.raises(SystemExit, match="valid choices: compile, n0, threads"):
        measure.main(["knobs", "--knobs", "turbo", "--out", str(out)])
