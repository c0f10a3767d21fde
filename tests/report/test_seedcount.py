"""How many seeds a claim gets (report/seedcount.py) and the power calculation behind it: only an undecided
pair or test that more seeds could decide asks for a count, and the count is the power function's."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest

from mfcbench.report import claims as C
from mfcbench.report import stats

SPEC = {"id": "t", "claim": "similar", "check": "similar_quality", "input": "table4", "metric": "val_mse",
        "higher_is_better": False, "tolerance": {"margin": 0.20, "min_seeds": 3}}
STRADDLING = [1.0, 1.4, 1.1]  # unet/msgd against SGD: an interval across the 20% margin


def _table(ratios: list[float], sgd_converged: bool = True) -> dict[str, pd.DataFrame]:
    rows = []
    for seed, ratio in enumerate(ratios):
        sgd = 0.10 + 0.01 * seed
        rows += [{"table": "table4", "dataset": "stl10", "arch": "unet", "strategy": "sgd", "seed": seed, "status": "ok",
                  "val_mse": sgd, "converged": sgd_converged, "wu_executed": 100.0},
                 {"table": "table4", "dataset": "stl10", "arch": "unet", "strategy": "msgd", "seed": seed, "status": "ok",
                  "val_mse": sgd * ratio, "converged": True, "wu_executed": 15.0}]
    return {"table4": pd.DataFrame(rows)}


def _added(results: dict[str, pd.DataFrame]) -> list[int]:
    from mfcbench.report.seedplan import plan

    _, pairs = C.score_all([SPEC], results)
    return [s for p in plan(pairs, "table4", list(range(10)), 3)["pairs"] for s in p["added"]]


def test_a_straddling_pair_whose_side_has_not_converged_gets_no_count_and_no_seeds():
    """seedplan's rule and docs/architecture.md: a side not converged keeps the pair undecided whatever the
    seeds, so it gets no power calculation and the planner adds none."""
    converged = C.check_similar_quality(SPEC, _table(STRADDLING)).pairs[0]
    assert converged["verdict"] == "INCONCLUSIVE" and converged["seeds_needed"] > 3
    assert _added(_table(STRADDLING)) == list(range(3, min(10, converged["seeds_needed"])))

    out = C.check_similar_quality(SPEC, _table(STRADDLING, sgd_converged=False))
    pair = out.pairs[0]
    assert out.verdict == "INCONCLUSIVE" and "SGD not converged" in pair["reason"]
    assert pair["seeds_needed"] is None and not re.search(r"needs \d+ seeds", pair["reason"]), pair["reason"]
    assert _added(_table(STRADDLING, sgd_converged=False)) == []


def _power(effect: float, n: int) -> float:
    from statsmodels.stats.power import TTestPower

    return float(TTestPower().power(effect_size=effect, nobs=n, alpha=stats.ALPHA, alternative="larger"))


def test_a_large_effect_gets_its_count_not_more_than_10000():
    """statsmodels' solver finds no root for an effect that 2 seeds decide; the count is searched with its
    power function instead of reported as 'more than 10000 seeds'."""
    needed = stats.seeds_needed(1.0, 0.04, 0.0)  # effect 25
    assert needed == 2 and _power(25.0, 2) >= stats.POWER
    assert stats.seeds_needed(1.0, 0.08, 0.0) == 2 and _power(12.5, 2) >= stats.POWER  # effect 12.5: no root either
    assert stats.seeds_needed(1e-4, 1.0, 0.0) == stats.MAX_SEEDS + 1  # really more than 10000


@pytest.mark.parametrize("effect", [0.05, 0.3, 1.0, 2.0, 5.0, 10.0])
def test_the_direct_search_agrees_with_the_solver_where_it_solves(effect):
    solved = stats.seeds_needed(effect, 1.0, 0.0)
    assert stats._search_seeds(effect, stats.ALPHA, stats.POWER) == solved
    assert _power(effect, solved) >= stats.POWER and (solved == 2 or _power(effect, solved - 1) < stats.POWER)


def _fig8(fd_log_ratios: list[float], confidence_gaps: list[float]) -> pd.DataFrame:
    rows = []
    for seed, (fd, gap) in enumerate(zip(fd_log_ratios, confidence_gaps)):
        rows += [{"run": "single_scale", "seed": seed, "status": "ok", "wu_executed": 100.0, "mean_confidence": 1.0,
                  "frechet_distance": 100.0, "dataset": "digits"},
                 {"run": "full_multiscale", "seed": seed, "status": "ok", "wu_executed": 80.0,
                  "mean_confidence": 1.0 - gap, "frechet_distance": 100.0 * math.exp(fd), "dataset": "digits"}]
    return pd.DataFrame(rows)


def test_figure8_asks_no_count_of_a_test_already_inside_its_tolerance():
    """The FD test is inside its tolerance (decided); the confidence gap sits on its tolerance, where no
    count can be said: the claim stays undecided and its seed plan adds nothing (it used to ask the FD
    test's own count and add seeds for it)."""
    from mfcbench.report.checks.experiments import _fig8_paired, fig8_decision, fig8_seed_plan, fig8_tolerance

    tol = {**fig8_tolerance(C.load_claims()), "confidence_abs": 0.5}
    table = _fig8([-0.1, 0.0, -0.2], [0.25, 0.5, 0.75])  # FD ratio ~0.9 (tolerance 1.25); gap mean exactly 0.5
    paired = _fig8_paired(table)
    assert stats.p_inside(paired["fd"], math.log1p(tol["frechet_rel"])) < stats.ALPHA  # FD decided
    assert stats.seeds_needed(float(paired["fd"].mean()), float(paired["fd"].std()), math.log1p(tol["frechet_rel"])) > 3
    verdict, reason, needed = fig8_decision(paired, tol)
    assert (verdict, needed) == ("INCONCLUSIVE", None) and "needs" not in reason
    assert fig8_seed_plan(table, tol, cap=10) == (3, "3 seeds leave it undecided and the power calculation gives "
                                                     "no count: none added")
    # the count of the undecided test alone, however far inside the FD test is
    far = _fig8([-1.0, -1.01, -0.99], [0.3, 0.5, 0.55])
    paired = _fig8_paired(far)
    gap = paired["confidence"]
    assert fig8_decision(paired, tol)[2] == stats.seeds_needed(float(gap.mean()), float(gap.std()), 0.5)


def test_the_seed_rule_grows_an_undecided_pair_in_steps_up_to_the_cap():
    from mfcbench.report.seedcount import grow_to, pair_needed, seed_target

    assert seed_target(3, 9, cap=10) == 9 and seed_target(3, 9, cap=10, step=4) == 10
    assert seed_target(5, 3, cap=10) == 6 and seed_target(5, 3, cap=10, step=2) == 7  # has them: one more step
    assert grow_to(3, 9, cap=6) == 6 and grow_to(3, None, cap=10) == 3 and grow_to(3, 9, cap=10, undecided=False) == 3
    assert grow_to(5, 9, cap=4) == 5  # never fewer than it has
    assert pair_needed(0.1, 0.1, 0.18, family=2, converged=False) is None
    assert pair_needed(0.1, 0.1, 0.18, family=2) == stats.seeds_needed(0.1, 0.1, 0.18, stats.ALPHA)
    assert pair_needed(0.3, 0.1, 0.18, family=2) == stats.seeds_needed(0.3, 0.1, 0.18, stats.ALPHA / 2)  # Holm
