"""The claims' statistics on hand-made frames: log-ratio interval, Holm, power, P(beat), time to target."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sp

from mfcbench.report import claims as C
from mfcbench.report import stats
from mfcbench.report.time_to_target import time_to_target

SPEC = {
    "id": "t",
    "claim": "similar",
    "check": "similar_quality",
    "input": "table4",
    "metric": "val_mse",
    "higher_is_better": False,
    "tolerance": {"margin": 0.20, "min_seeds": 3},
}


def cells(
    ratios: dict[tuple[str, str], list[float]], converged: bool = True, wu: bool = True
) -> dict[str, pd.DataFrame]:
    """Networks x multiscale strategies; SGD's MSE varies by seed, each multiscale cell is SGD's times the ratio."""
    rows = []
    for (arch, strategy), values in ratios.items():
        for seed, r in enumerate(values):
            sgd = 0.10 + 0.01 * seed
            for s, v in (("sgd", sgd), (strategy, sgd * r)):
                rows.append(
                    {
                        "table": "table4",
                        "dataset": "stl10",
                        "arch": arch,
                        "strategy": s,
                        "seed": seed,
                        "status": "ok",
                        "val_mse": v,
                        "converged": converged,
                        **({"wu_executed": 100.0 if s == "sgd" else 15.0} if wu else {}),
                    }
                )
    return {"table4": pd.DataFrame(rows).drop_duplicates(["arch", "strategy", "seed"])}


def test_log_ratio_interval_matches_a_direct_scipy_computation():
    ours, sgd = pd.Series([0.11, 0.125, 0.118, 0.13]), pd.Series([0.10, 0.11, 0.105, 0.104])
    d = np.log(ours / sgd)
    low, high = sp.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=sp.sem(d))
    interval = stats.paired_interval(stats.worse(stats.log_ratios(ours, sgd), False), False)
    assert interval.ratio == pytest.approx(math.exp(d.mean()))
    assert (interval.ratio_low, interval.ratio_high) == pytest.approx((math.exp(low), math.exp(high)))
    flipped = stats.paired_interval(stats.worse(stats.log_ratios(ours, sgd), True), True)  # higher is better
    assert (flipped.ratio_low, flipped.ratio_high) == pytest.approx((math.exp(low), math.exp(high)))
    assert flipped.mean == pytest.approx(-d.mean())


def test_p_values_are_one_sided_t_tests_against_the_margin():
    d = pd.Series([0.25, 0.3, 0.22])
    bound = math.log(1.2)
    assert stats.p_worse(d, bound) == pytest.approx(sp.ttest_1samp(d, bound, alternative="greater").pvalue)
    assert stats.p_inside(d, bound) == pytest.approx(sp.ttest_1samp(d, bound, alternative="less").pvalue)
    assert (
        stats.p_worse(pd.Series([0.3, 0.3, 0.3]), bound) == 0.0 and stats.p_inside(pd.Series([0.3] * 3), bound) == 1.0
    )


def test_holm_keeps_a_pair_outside_only_without_correction_from_deviating():
    outside = [1.27, 1.29, 1.26]  # interval wholly above 1.2, one-sided p ~ 0.007
    alone = C.check_similar_quality(SPEC, cells({("unet", "fmsgd"): outside}))
    assert alone.verdict == "DEVIATES", alone.reason
    pair = alone.pairs[0]
    assert pair["p_worse"] < stats.ALPHA and pair["low"] > 1.2
    family = {
        ("unet", "fmsgd"): outside,
        **{(a, s): [1.0, 1.01, 0.99] for a in ("resnet", "mfc_unet", "mfc_resnet") for s in ("msgd", "fmsgd")},
        ("unet", "msgd"): [1.0, 1.01, 0.99],
    }
    out = C.check_similar_quality(SPEC, cells(family))
    assert len(out.pairs) == 8 and out.verdict == "INCONCLUSIVE", out.reason
    worst = next(p for p in out.pairs if (p["arch"], p["strategy"]) == ("unet", "fmsgd"))
    assert worst["p_worse"] < stats.ALPHA < worst["p_holm"]
    assert worst["p_holm"] == pytest.approx(min(1.0, 8 * worst["p_worse"]))  # the smallest p: Holm's first step
    assert "before Holm's correction, not after" in worst["reason"] and "needs" in worst["reason"]


def test_power_calculation_asks_fewer_seeds_for_a_larger_effect():
    from statsmodels.stats.power import TTestPower

    bound = math.log(1.2)
    near, far = stats.seeds_needed(0.15, 0.1, bound), stats.seeds_needed(0.05, 0.1, bound)
    assert near > far >= 2
    direct = TTestPower().solve_power(
        effect_size=abs(0.15 - bound) / 0.1, alpha=stats.ALPHA, power=stats.POWER, alternative="larger"
    )
    assert near == math.ceil(direct)
    assert stats.seeds_needed(0.1, 0.0, bound) is None and stats.seeds_needed(bound, 0.1, bound) is None


def test_an_undecided_pair_says_how_many_seeds_would_decide_it():
    out = C.check_similar_quality(SPEC, cells({("unet", "msgd"): [1.0, 1.4, 1.1]}))
    pair = out.pairs[0]
    assert out.verdict == "INCONCLUSIVE" and pair["seeds_needed"] > 3
    assert f"needs {pair['seeds_needed']} seeds" in out.reason


def test_beat_probability_with_a_wilson_interval():
    from statsmodels.stats.proportion import proportion_confint

    wins, n, p, low, high = stats.beat_probability(pd.Series([-0.1, -0.2, 0.05, -0.01]))
    assert (wins, n, p) == (3, 4, 0.75)
    assert (low, high) == pytest.approx(proportion_confint(3, 4, alpha=0.05, method="wilson"))
    out = C.check_similar_quality(SPEC, cells({("unet", "msgd"): [0.9, 0.95, 1.05]}))
    assert out.pairs[0]["p_beat"] == pytest.approx(2 / 3) and "beats SGD on 2/3 seeds" in out.reproduced


def _curves(values: dict[str, list[float]], wus: dict[str, list[float]], status=None, planned=None):
    cell_rows, curve_rows = [], []
    for seed in range(3):
        for strategy, vals in values.items():
            cell_rows.append(
                {
                    "table": "table4",
                    "arch": "unet",
                    "strategy": strategy,
                    "seed": seed,
                    "status": (status or {}).get(strategy, "ok"),
                    "val_mse": vals[-1] * (1 + 0.01 * seed),
                    "wu_executed": wus[strategy][-1],
                    "wu_closed_form": (planned or {}).get(strategy, wus[strategy][-1]),
                    "train_seconds": wus[strategy][-1] / 10,
                    "converged": True,
                }
            )
            curve_rows += [
                {
                    "table": "table4",
                    "arch": "unet",
                    "strategy": strategy,
                    "seed": seed,
                    "iteration": i,
                    "val_metric": v * (1 + 0.01 * seed),
                    "wu_executed": w,
                    "train_seconds": w / 10,
                }
                for i, (v, w) in enumerate(zip(vals, wus[strategy]))
            ]
    return pd.DataFrame(cell_rows), pd.DataFrame(curve_rows)


def test_time_to_target_median_target_and_censoring_at_the_budget():
    frames = _curves(
        {"sgd": [0.5, 0.2, 0.11, 0.10], "fmsgd": [0.4, 0.3, 0.25, 0.2]},
        {"sgd": [100, 200, 300, 400], "fmsgd": [5, 10, 20, 40]},
        planned={"fmsgd": 50.0},
    )
    times = time_to_target(*frames, "val_mse", False, 0.20).set_index(["strategy", "seed"])
    assert times["target"].unique() == pytest.approx([0.101 * 1.2])  # median of SGD's finals 0.100, 0.101, 0.102
    missed = times.loc["fmsgd"]
    assert len(missed) == 3 and not missed["reached"].any()  # censored, not dropped
    assert (missed["wu_to_target"] == 50.0).all() and (missed["seconds_to_target"] == 4.0).all()
    assert times.loc[("sgd", 0), "reached"] and times.loc[("sgd", 0), "wu_to_target"] == 300


def test_time_to_quality_verdict_paths_in_wu_and_seconds():
    spec = {
        "id": "q",
        "claim": "",
        "check": "time_to_quality",
        "input": "table4",
        "metric": "val_mse",
        "higher_is_better": False,
        "strategy": "fmsgd",
        "tolerance": {"margin": 0.20, "min_seeds": 3},
    }
    fast = _curves(
        {"sgd": [0.5, 0.2, 0.11, 0.10], "fmsgd": [0.4, 0.115, 0.11, 0.105]},
        {"sgd": [100, 200, 300, 400], "fmsgd": [5, 10, 20, 40]},
    )
    out = C.check_time_to_quality(spec, {"table4": fast[0], "curves_table4": fast[1]})
    assert out.verdict == "REPRODUCED", out.reason
    assert {p["unit"] for p in out.pairs} == {"wu", "seconds"}
    slow = _curves(
        {"sgd": [0.5, 0.11, 0.10, 0.10], "fmsgd": [0.4, 0.3, 0.25, 0.11]},
        {"sgd": [10, 20, 30, 40], "fmsgd": [50, 100, 150, 200]},
    )
    out = C.check_time_to_quality(spec, {"table4": slow[0], "curves_table4": slow[1]})
    assert out.verdict == "DEVIATES", out.reason


def test_similar_quality_verdict_paths():
    assert C.check_similar_quality(SPEC, cells({("unet", "msgd"): [1.05, 1.06, 1.04]})).verdict == "REPRODUCED"
    assert C.check_similar_quality(SPEC, cells({("unet", "msgd"): [1.5, 1.52, 1.49]})).verdict == "DEVIATES"
    assert C.check_similar_quality(SPEC, cells({("unet", "msgd"): [1.0, 1.4, 1.1]})).verdict == "INCONCLUSIVE"
    assert C.check_similar_quality(SPEC, {}).verdict == "NOT_RUN"
    unconverged = C.check_similar_quality(SPEC, cells({("unet", "msgd"): [1.5, 1.52, 1.49]}, converged=False))
    assert unconverged.verdict == "INCONCLUSIVE" and "SGD not converged" in unconverged.reason
    dear = cells({("unet", "msgd"): [1.05, 1.06, 1.04]})
    dear["table4"]["wu_executed"] = 100.0
    out = C.check_similar_quality(SPEC, dear)
    assert out.verdict == "DEVIATES" and "not at a fraction of SGD's #WU" in out.reason


def test_claims_cli_writes_pairs_and_cells_and_the_report_lists_every_pair(tmp_path):
    from mfcbench.cli.report import main
    from mfcbench.report.evidence import CELL_COLUMNS
    from mfcbench.report.pairs import PAIR_COLUMNS

    results = tmp_path / "results"
    results.mkdir()
    frame = cells({(a, s): [1.05, 1.1, 1.0] for a in ("unet", "resnet") for s in ("msgd", "fmsgd")})["table4"]
    frame.assign(
        headline_metric="val_mse", wu_closed_form=frame["wu_executed"], train_seconds=1.0, plateau=0.001
    ).to_csv(results / "table4.csv", index=False)
    reports = tmp_path / "reports"
    assert main(["claims", "--results-dir", str(results), "--profile", "p", "--out", str(reports / "claims.csv")]) == 0
    pairs, cell_rows = pd.read_csv(reports / "pairs.csv"), pd.read_csv(reports / "cells.csv")
    assert list(pairs.columns) == PAIR_COLUMNS and list(cell_rows.columns) == CELL_COLUMNS
    mine = pairs[pairs["claim"] == "table4_similar_quality"]
    assert len(mine) == 4 and set(mine["n"]) == {3} and len(cell_rows) == 18
    assert set(cell_rows["metric"]) == {"val_mse"} and cell_rows["wu_planned"].notna().all()
    assert (
        main(
            [
                "markdown",
                "--results-dir",
                str(results),
                "--reports-dir",
                str(reports),
                "--profile",
                "p",
                "--out",
                str(reports / "REPORT.md"),
            ]
        )
        == 0
    )
    text = (reports / "REPORT.md").read_text()
    block = text[text.index("<code>table4_similar_quality</code>") :]
    block = block[: block.index("</details>")]
    assert all(f"| {a}/{s} | SGD | 3 |" in block for a in ("unet", "resnet") for s in ("msgd", "fmsgd")), block


def test_performance_profile_over_networks():
    from mfcbench.report.time_to_target import performance_profile

    rows = [
        {"table": "table4", "arch": arch, "strategy": s, "seed": seed, "reached": reached, "wu_to_target": wu}
        for arch, times in (("unet", {"sgd": 100, "fmsgd": 10}), ("resnet", {"sgd": 100, "fmsgd": 300}))
        for s, wu in times.items()
        for seed in range(3)
        for reached in [not (arch == "resnet" and s == "fmsgd")]
    ]
    profile = performance_profile(pd.DataFrame(rows)).set_index(["strategy", "tau"])["fraction"]
    assert profile[("fmsgd", 1)] == 0.5 and profile[("fmsgd", 64)] == 0.5  # never reached on resnet
    assert profile[("sgd", 1)] == 0.5 and profile[("sgd", 8)] == 0.5 and profile[("sgd", 16)] == 1.0


def test_time_to_target_counts_only_finest_mesh_validations():
    """A Full-Multiscale level validates on its own mesh: a coarse mesh's low MSE is no arrival (the converged
    run of 2026-12-04 scored Full-Multiscale cells 1.5x worse than SGD as reaching SGD's target)."""
    cells, curves = _curves(
        {"sgd": [0.5, 0.2, 0.11, 0.10], "fmsgd": [0.05, 0.06, 0.25, 0.2]},
        {"sgd": [100, 200, 300, 400], "fmsgd": [5, 10, 20, 40]},
        planned={"fmsgd": 50.0},
    )
    curves["level"] = [0 if s == "sgd" or i >= 2 else 1 for s, i in zip(curves["strategy"], curves["iteration"])]
    times = time_to_target(cells, curves, "val_mse", False, 0.20).set_index(["strategy", "seed"])
    assert not times.loc["fmsgd", "reached"].any() and (times.loc["fmsgd", "wu_to_target"] == 50.0).all()


def test_claims_and_report_read_only_the_files_the_profile_builds(tmp_path):
    """A CSV left in results/<profile>/ by an extra the profile has since dropped is not reported (--only)."""
    import shutil

    from mfcbench.cli.report import main

    results, reports = tmp_path / "results", tmp_path / "reports"
    results.mkdir()
    shutil.copy(Path(__file__).resolve().parents[1] / "fixtures" / "report" / "table11.csv", results / "table11.csv")
    args = ["claims", "--results-dir", str(results), "--profile", "p", "--out", str(reports / "claims.csv")]
    verdict = lambda: pd.read_csv(reports / "claims.csv").set_index("id").loc["table11_conv_formula", "verdict"]  # noqa: E731
    assert main(args) == 0 and verdict() != "NOT_RUN"
    assert main(args + ["--only", str(results / "table4.csv")]) == 0 and verdict() == "NOT_RUN"
    assert main(["markdown", "--results-dir", str(results), "--reports-dir", str(reports), "--profile", "p",
                 "--out", str(reports / "REPORT.md"), "--only"]) == 0
    assert "table11.csv" not in (reports / "REPORT.md").read_text().split("## Provenance")[-1]
