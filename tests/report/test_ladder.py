"""The ladder's trend claims (report/checks/ladder.py) on synthetic per-seed results: a gap that shrinks
toward the paper's scale, one that grows, and one whose slope interval straddles 0."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mfcbench.report.checks.ladder import check_ladder_trend, ladder_points

SPEC = {"id": "ladder_table4_width", "claim": "the gap shrinks", "check": "ladder_trend", "axis": "width",
        "rungs": {"table4": 0.25, "table4_w05": 0.5, "table4_w1": 1.0}, "paper": 1.0, "metric": "val_mse",
        "higher_is_better": False, "tolerance": {"margin": 0.20, "min_seeds": 3}}


def rung(table: str, value: float, ratio_at, seeds=(0, 1, 2, 3), noise=0.01, converged=True) -> pd.DataFrame:
    """SGD at MSE 0.1 on every seed; each multiscale strategy at `ratio_at(value)` times it, with noise."""
    rng = np.random.default_rng(int(value * 1000))
    rows = []
    for seed in seeds:
        rows.append({"table": table, "arch": "unet", "strategy": "sgd", "variant": "base", "seed": seed,
                     "status": "ok", "val_mse": 0.1, "converged": True, "dataset": "skimage"})
        for strategy in ("msgd", "fmsgd"):
            ratio = ratio_at(value) * math.exp(rng.normal(0, noise))
            rows.append({"table": table, "arch": "unet", "strategy": strategy, "variant": "base", "seed": seed,
                         "status": "ok", "val_mse": 0.1 * ratio, "converged": converged, "dataset": "skimage"})
    return pd.DataFrame(rows)


def results(ratio_at, **kwargs) -> dict[str, pd.DataFrame]:
    return {t: rung(t, v, ratio_at, **kwargs) for t, v in SPEC["rungs"].items()}


def test_a_gap_that_shrinks_toward_the_paper_is_reproduced():
    verdict = check_ladder_trend(SPEC, results(lambda w: 1.5 * (w / 0.25) ** -0.2))
    assert verdict.verdict == "REPRODUCED", verdict.reason
    assert "fitted at the paper's width 1" in verdict.reason and "extrapolat" not in verdict.reason  # a rung run
    row = next(p for p in verdict.pairs if p["strategy"] == "fmsgd")
    assert row["verdict"] == "REPRODUCED" and row["ratio"] == pytest.approx(2 ** -0.2, rel=0.05)


def test_a_gap_that_grows_deviates_and_the_extrapolation_is_named():
    spec = {**SPEC, "paper": 2.0}  # beyond the rungs run: an extrapolation
    verdict = check_ladder_trend(spec, results(lambda w: 1.2 * (w / 0.25) ** 0.2))
    assert verdict.verdict == "DEVIATES", verdict.reason
    assert "(an extrapolation)" in verdict.reason and "slope +0.1" in verdict.reason


def test_a_higher_is_better_metric_shrinks_when_its_ratio_rises_toward_one():
    spec = {**SPEC, "metric": "val_ssim", "higher_is_better": True}
    frames = {t: f.rename(columns={"val_mse": "val_ssim"}) for t, f in results(lambda w: 0.8 * (w / 0.25) ** 0.1).items()}
    assert check_ladder_trend(spec, frames).verdict == "REPRODUCED"


def test_a_straddling_slope_is_inconclusive_with_the_seeds_it_needs():
    verdict = check_ladder_trend(SPEC, results(lambda w: 1.3 * (w / 0.25) ** -0.01, noise=0.05))
    assert verdict.verdict == "INCONCLUSIVE", verdict.reason
    assert "straddles 0" in verdict.reason and "needs" in verdict.reason


def test_a_rung_that_did_not_converge_is_named_not_dropped():
    frames = results(lambda w: 1.5 * (w / 0.25) ** -0.2)
    frames["table4_w1"] = rung("table4_w1", 1.0, lambda w: 1.5 * 4 ** -0.2, converged=False)
    verdict = check_ladder_trend(SPEC, frames)
    points, _ = ladder_points(SPEC, frames)
    assert len(points[points["table"] == "table4_w1"]) == 8  # kept in the fit
    assert "table4_w1 seed(s) 0, 1, 2, 3 (not converged: fmsgd)" in verdict.reason
    # the same convergence standard as a pair's: both series shrink in the fit, but neither is decided, and no
    # seed count is asked for (more seeds would not make the rung converge)
    assert verdict.verdict == "INCONCLUSIVE" and "not converged or not finished on table4_w1" in verdict.reason
    assert verdict.pairs and all(p["verdict"] == "INCONCLUSIVE" and p["seeds_needed"] is None for p in verdict.pairs)
    assert all(p["high"] < 1 for p in verdict.pairs)  # the slope shown is still the fit over every rung


def test_missing_rungs_are_named_and_one_rung_is_not_run():
    frames = results(lambda w: 1.5)
    del frames["table4_w1"]
    assert "Rungs not run: table4_w1" in check_ladder_trend(SPEC, frames).reason
    only_base = {"table4": frames["table4"]}
    verdict = check_ladder_trend(SPEC, only_base)
    assert verdict.verdict == "NOT_RUN" and "table4_w05" in verdict.reason


def test_the_ladder_figure_writes_its_png_and_data(tmp_path):
    from mfcbench.figures.paper import render

    rungs = {"table4": 0.25, "table4_w05": 0.5, "table4_b2": 2.0, "table5": 0.25, "table5_w1": 1.0}
    paths = []
    for table, value in rungs.items():
        frame = rung(table, value, lambda v: 1.4 * max(v, 0.25) ** -0.1)
        if table.startswith("table5"):
            frame = frame.rename(columns={"val_mse": "val_ssim"}).assign(val_ssim=lambda f: 1 / (10 * f["val_ssim"]))
        paths.append(tmp_path / f"{table}.csv")
        frame.to_csv(paths[-1], index=False)
    out = render("ladder", paths, tmp_path / "ladder.png")
    data = pd.read_csv(out.with_suffix(".csv"))
    assert out.is_file() and set(data["table"]) == set(rungs)
    width = data[(data["claim"] == "ladder_table4_width") & (data["strategy"] == "msgd")]
    assert list(width["value"]) == [0.25, 0.5] and (width["margin"] == 1.2).all() and (width["paper"] == 1.0).all()
