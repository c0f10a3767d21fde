"""Timing: measurement fields, missing devices, the Multiscale-SGD plan and telescoping loss."""

from __future__ import annotations

import pytest
import torch

from mfcbench.measure import suites, timing


def test_measure_cpu_reports_positive_median_and_runs():
    x = torch.randn(64, 64)
    result = timing.measure(lambda: x @ x, threads=1, min_run_time=0.02, warmup=1)
    assert result["status"] == "ok"
    assert result["median_ms"] > 0 and result["iqr_ms"] >= 0 and result["runs"] >= 1


def test_measure_orders_cheap_and_expensive_work():
    small, big = torch.randn(16, 16), torch.randn(256, 256)
    fast = timing.measure(lambda: small @ small, threads=1, min_run_time=0.02)["median_ms"]
    slow = timing.measure(lambda: big @ big @ big, threads=1, min_run_time=0.02)["median_ms"]
    assert slow > fast


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")
def test_cuda_without_device_is_marked_not_measured():
    result = timing.measure(lambda: None, device="cuda")
    assert result["status"] == timing.NO_CUDA and result["median_ms"] == ""
    env = timing.environment("cuda")
    assert env["device_description"] == "none"


def test_unknown_device_lists_choices():
    with pytest.raises(ValueError, match="cpu, cuda"):
        timing.device_available("tpu")


def test_environment_records_threads_versions_allocator(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000")
    env = timing.environment("cpu", threads=2)
    assert env["threads"] == 2 and env["torch_version"] == torch.__version__
    assert "MALLOC_TRIM_THRESHOLD_=1000" in env["allocator_env"]
    assert env["device_description"]


def test_msgd_plan_matches_table15_setting():
    assert suites.msgd_plan(4) == [(1, 0, 1), (2, 1, 2), (4, 2, 3), (8, 3, None)]
    assert suites.describe_plan(256) == "1@256+128, 2@128+64, 4@64+32, 8@32"


@pytest.mark.parametrize("strategy,calls", [("sgd", [(16, 15)]), ("msgd", [(16, 1), (8, 1 + 2), (4, 2 + 4), (2, 4 + 8)])])
def test_table15_times_the_trained_step(strategy, calls, monkeypatch):
    """Table 15 and the bench time `Strategy.loss` itself (one call per mesh) on a fixed sampler."""
    from mfcbench.strategies.base import Strategy

    seen_loss = []
    loss = Strategy.loss
    monkeypatch.setattr(Strategy, "loss", lambda self, *a: seen_loss.append(self.name) or loss(self, *a))
    model = suites.step_model("resnet", width=0.125)
    shapes = []
    model.register_forward_pre_hook(lambda m, args: shapes.append((args[0].shape[-1], args[0].shape[0])))
    step = suites.training_step(model, strategy, 16, "cpu")
    step()
    assert seen_loss == [strategy] and shapes == calls
    shapes.clear()
    step()
    assert shapes == calls  # the same fixed images, batch after batch


@pytest.mark.parametrize("strategy", ["sgd", "msgd"])
def test_training_step_updates_parameters(strategy):
    model = suites.step_model("resnet", width=0.125)
    before = [p.detach().clone() for p in model.parameters()]
    suites.training_step(model, strategy, 16, "cpu")()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
    with pytest.raises(ValueError, match="sgd, msgd"):
        suites.training_step(model, "adamw", 16, "cpu")


def test_fig7_rows_time_conv_and_mfc(tmp_path):
    rows = suites.fig7_rows(threads=1, quick=True, sizes=(16,), kernels=(3,), channel_counts=(3,))
    assert [r["op"] for r in rows] == ["conv3x3", "mfc_pointwise"]
    assert all(r["status"] == "ok" and r["median_ms"] > 0 and r["threads"] == 1 for r in rows)
    out = tmp_path / "fig7.csv"
    suites.write_rows(out, rows)
    assert out.read_text().splitlines()[0].startswith("figure,op,k,n")


def test_fig7_mfc_sets_tau():
    layer = suites.fig7_mfc(3, tau=0.1)
    assert torch.allclose(layer.tau(), torch.full((3,), 0.1))


def test_table15_missing_model_and_missing_device_rows():
    devices = ("cuda",) if not torch.cuda.is_available() else ()
    rows = suites.table15_rows(models=("no_such_model",), devices=("cpu",) + devices, quick=True)
    assert all("not registered" in r["status"] for r in rows)
    assert {r["strategy"] for r in rows} == {"sgd", "msgd"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")
def test_bench_on_absent_cuda_writes_not_measured_rows(tmp_path):
    import csv

    from mfcbench.cli import bench

    out = tmp_path / "bench.csv"
    assert bench.main(["--device", "cuda", "--quick", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert {r["comparison"] for r in rows} == set(bench.COMPARISONS)
    assert all(r["status"] == "not measured: no CUDA device" and r["median_ms"] == "" for r in rows)


def test_bench_counts_one_model_call_per_mesh_in_a_multiscale_step():
    from mfcbench.measure.bench_rows import Bench
    from mfcbench.measure.bench_steps import bench_msgd_calls

    b = Bench("cpu", 1, quick=True)
    bench_msgd_calls(b)
    (row,) = b.rows
    assert row["value"] == 4 and row["met"] is True
    # each mesh's call holds the coarse part of one draw and the fine part of the next: 1, 1+2, 2+4, 4+8
    assert row["notes"] == "input shapes 1x3x32x32, 3x3x16x16, 6x3x8x8, 12x3x4x4"


def test_bench_table4_ratios_use_the_issue_targets_and_skip_variants(tmp_path):
    import csv

    from mfcbench.measure.bench_cells import bench_table4_train_time
    from mfcbench.measure.bench_rows import Bench

    table = tmp_path / "table4.csv"
    rows = [("resnet", "sgd", "base", 70.0), ("resnet", "sgd", "base", 50.0), ("resnet", "msgd", "base", 20.0),
            ("resnet", "fmsgd", "base", 5.0), ("unet", "sgd", "base", 30.0), ("unet", "msgd", "base", 20.0),
            ("unet", "msgd", "x2", 1.0)]
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["arch", "strategy", "variant", "status", "train_seconds"])
        writer.writerows([(a, s, v, "ok", t) for a, s, v, t in rows])
    b = Bench("cpu", 1, quick=True)
    bench_table4_train_time(b, str(table))
    got = {r["variant"]: (r["value"], r["target"].split(" (")[0], r["met"]) for r in b.rows}
    assert got == {"resnet ratio sgd/msgd training seconds": (3.0, ">= 3.5", False),
                   "resnet ratio sgd/fmsgd training seconds": (12.0, ">= 15.0", False),
                   "unet ratio sgd/msgd training seconds": (1.5, ">= 2.0", False)}


def test_bench_time_to_sgds_value_counts_finest_mesh_validations_only():
    from mfcbench.measure.bench_cells import first_reach

    curve = [{"seconds": "0.2", "level": "3", "val_metric": "0.01"},  # a coarse level's own-mesh number
             {"seconds": "5.0", "level": "0", "val_metric": "0.09"},
             {"seconds": "7.5", "level": "0", "val_metric": "0.05"}]
    assert first_reach(curve, 0.06) == 7.5 and first_reach(curve, 0.04) is None
