"""Time-to-quality claims, decided on time to target as AlgoPerf scores it (`report.time_to_target`).

Per network, a pair: the seed-paired log ratio of the executed #WU (and, apart, the training seconds)
a multiscale strategy and SGD need to reach the network's target. The claim "fewer #WU than SGD" is
REPRODUCED when every network's 95% interval of that ratio lies below 1 and the strategy reached the
target on every seed; DEVIATES when a network is slower after Holm's correction across networks, or
never reaches the target on any seed with converged cells (a miss is censored at the cell's budget, a
diverged cell is a miss); both sides converged to decide either way. The verdict is on #WU, as the
paper's Figure 5; the seconds pairs are shown beside it (pairs.csv, unit 'seconds').
"""

from __future__ import annotations

import pandas as pd

from .. import pairs as P
from .. import stats
from ..engine import DEVIATES, NOT_RUN, Inputs, check, combine, datasets
from ..time_to_target import time_to_target

UNITS = {"wu": "wu_to_target", "seconds": "seconds_to_target"}


@check(
    "time_to_quality",
    inputs=lambda spec: [spec["input"], f"curves_{spec['input']}"],
    published=lambda spec: "fewer #WU than SGD (Figure 5)",
)
def check_time_to_quality(data: Inputs):
    """Full-Multiscale reaches SGD's target (median final metric within the margin) at fewer executed
    #WU than SGD needs to get there, per network (see the module)."""
    spec, tol, strategy = data.spec, data.tolerance, data.spec.get("strategy", "fmsgd")
    cells, curves = data.frame, data.frames[f"curves_{spec['input']}"]
    if "val_metric" not in curves or spec["metric"] not in cells:
        return data.verdict(NOT_RUN, f"needs {spec['input']}.csv and curves_{spec['input']}.csv with validation curves")
    times = time_to_target(cells, curves, spec["metric"], spec["higher_is_better"], tol["margin"])
    min_seeds = tol.get("min_seeds", 3)
    decided = {}
    for unit, column in UNITS.items():
        found = [time_pair(group, strategy, unit, column, spec, min_seeds) for _, group in times.groupby("arch")]
        decided[unit] = P.decide([p for p in found if p is not None], min_seeds) if any(found) else []
    if not decided["wu"]:
        return data.verdict(NOT_RUN, f"no network has both SGD and {strategy}")
    verdict = combine(p["verdict"] for p in decided["wu"])
    reasons = [p["reason"] for p in decided["wu"] if p["verdict"] == verdict]
    others = [f"{p['reason']} ({p['verdict']})" for p in decided["wu"] if p["verdict"] != verdict]
    seconds = pd.Series([p["verdict"] for p in decided["seconds"]]).value_counts()
    reason = (
        "; ".join(reasons[:4]) + (" ..." if len(reasons) > 4 else "") + f" (target: SGD's median final "
        f"{spec['metric']} within {tol['margin']:.0%}; #WU)"
        + (f"; the other networks: {'; '.join(others[:3])}" if others else "")
        + ("; in training seconds: " + ", ".join(f"{n} {v}" for v, n in seconds.items()) if len(seconds) else "")
    )
    return data.verdict(
        verdict,
        reason,
        reproduced="; ".join(p["display"] for p in decided["wu"][:4]),
        dataset=datasets(cells),
        pairs=tuple(P.public(p) for u in UNITS for p in decided[u]),
    )


def time_pair(group: pd.DataFrame, strategy: str, unit: str, column: str, spec: dict, min_seeds: int) -> dict | None:
    """One network's evidence in one unit: log(time ours / time SGD) per seed, misses recorded."""
    by = {s: g.set_index("seed") for s, g in group.groupby("strategy")}
    if "sgd" not in by or strategy not in by:
        return None
    seeds = sorted(set(by["sgd"].index) & set(by[strategy].index))
    ours, sgd = by[strategy].loc[seeds], by["sgd"].loc[seeds]
    if pd.to_numeric(ours[column], errors="coerce").isna().all():
        return None  # e.g. no training seconds recorded
    pair = {**P.new_pair(spec["input"], str(group["arch"].iloc[0]), strategy, spec["metric"], unit), "margin": 1.0}
    worse_log = stats.log_ratios(ours[column], sgd[column])
    P.fill(pair, worse_log, False, 0.0)
    final = ours.assign(converged=ours["converged"].where(ours["status"] != "diverged", True))  # diverged: final
    P.convergence(pair, {strategy: final, "sgd": sgd}, strategy, list(worse_log.index))
    missed = [int(k) for k, v in ours["reached"].items() if not v]
    never = worse_log.where(~worse_log.index.isin(missed), float("inf"))  # a miss never beats SGD
    wins, _, p_beat, beat_low, beat_high = stats.beat_probability(never)
    pair.update(_wins=wins, p_beat=p_beat, beat_low=beat_low, beat_high=beat_high)
    if missed and len(missed) == len(seeds) and len(seeds) >= min_seeds and not pair["_blocks"]:
        return P.fixed(
            pair,
            DEVIATES,
            f"never reached the target (seeds {missed}; converged or diverged cells, "
            f"censored at the budget: {P.display(pair)})",
        )
    if missed:
        pair["_no_reproduce"].append(f"{strategy} missed the target on seed(s) {missed} (censored at its budget)")
    sgd_missed = [int(k) for k, v in sgd["reached"].items() if not v]
    if sgd_missed:
        pair["_no_deviate"].append(f"SGD missed its own target on seed(s) {sgd_missed}")
    return pair
