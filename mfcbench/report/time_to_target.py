"""Time to target, as AlgoPerf scores it: the executed #WU and training seconds each cell needs to reach
a (table, network)'s target.

The target of a (table, network) is the median over SGD's finished seeds of its final headline metric,
loosened by the claim's margin (x (1 + margin) when lower is better, x (1 - margin) when higher is
better). For every cell of that network, the first validation on its curve that meets the target gives
the executed #WU and the training seconds (optimizer steps only) spent to get there; only finest-mesh
validations count (a Full-Multiscale level validates on its own mesh). A cell that never
meets it is *censored* at its budget (the planned closed-form #WU, else what it executed; its training
seconds), not dropped: `reached` is False and the time is a lower bound. A cell whose status is not ok
never counts as reaching the target (a diverged cell that touched it before diverging is a miss);
failed cells, which have no curve, are left out. Pure pandas over `tableN.csv` and `curves_tableN.csv`.
"""

from __future__ import annotations

import math

import pandas as pd

from .layout import normalise

TTT_COLUMNS = [
    "table",
    "arch",
    "strategy",
    "seed",
    "target",
    "reached",
    "wu_to_target",
    "seconds_to_target",
    "wu_budget",
    "seconds_budget",
    "converged",
    "status",
]


def _base(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.assign(
        _a=frame["arch"].map(normalise),
        _s=frame["strategy"].map(normalise),
        _st=frame["status"].map(normalise) if "status" in frame else "ok",
    )
    if "variant" in frame:
        frame = frame[frame["variant"].map(normalise).isin(["base", "nan", "none", ""])]
    return frame


def targets(cells: pd.DataFrame, metric: str, higher: bool, margin: float) -> dict[str, float]:
    """Per network: the median of SGD's finished seeds' final metric, loosened by the margin."""
    cells = _base(cells)
    sgd = cells[(cells["_s"] == "sgd") & cells["_st"].isin(["ok", "nan"])]
    medians = pd.to_numeric(sgd[metric], errors="coerce").groupby(sgd["_a"]).median().dropna()
    return {arch: float(m) * ((1 - margin) if higher else (1 + margin)) for arch, m in medians.items()}


def time_to_target(cells: pd.DataFrame, curves: pd.DataFrame, metric: str, higher: bool, margin: float) -> pd.DataFrame:
    """One row per cell of a network with a target (see TTT_COLUMNS); `metric` is the headline column of `cells`."""
    goal = targets(cells, metric, higher, margin)
    cells, curves = _base(cells), _base(curves)
    rows = []
    for _, cell in cells[cells["_a"].isin(goal) & cells["_st"].isin(["ok", "nan", "diverged"])].iterrows():
        curve = curves[(curves["_a"] == cell["_a"]) & (curves["seed"] == cell["seed"]) & (curves["_s"] == cell["_s"])]
        rows.append(_cell_time(cell, curve, goal[cell["_a"]], higher))
    return pd.DataFrame(rows, columns=TTT_COLUMNS).sort_values(["arch", "strategy", "seed"], ignore_index=True)


def _number(value) -> float:
    value = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
    return float(value) if pd.notna(value) else math.nan


def finest_mesh(curve: pd.DataFrame) -> pd.DataFrame:
    """The validations that compare with the target: a Full-Multiscale level validates on its own mesh
    (Algorithm 2), and a coarse mesh's metric is not the finest mesh's (a coarse MSE is lower)."""
    if "level" not in curve.columns:
        return curve
    return curve[pd.to_numeric(curve["level"], errors="coerce").fillna(0) == 0]


def _cell_time(cell: pd.Series, curve: pd.DataFrame, target: float, higher: bool) -> dict:
    curve = finest_mesh(curve)
    values = pd.to_numeric(curve.get("val_metric"), errors="coerce")
    met = curve[(values >= target) if higher else (values <= target)]
    first = met.sort_values("iteration").iloc[0] if not met.empty and cell["_st"] in ("ok", "nan") else None
    planned, executed = _number(cell.get("wu_closed_form")), _number(cell.get("wu_executed"))
    wu_budget = planned if planned == planned else executed
    seconds_budget = _number(cell.get("train_seconds"))
    return {
        "table": cell.get("table"),
        "arch": cell["_a"],
        "strategy": cell["_s"],
        "seed": int(cell["seed"]),
        "target": target,
        "reached": first is not None,
        "wu_to_target": _number(first["wu_executed"]) if first is not None else wu_budget,
        "seconds_to_target": (_number(first.get("train_seconds")) if first is not None else seconds_budget),
        "wu_budget": wu_budget,
        "seconds_budget": seconds_budget,
        "converged": cell.get("converged"),
        "status": cell["_st"],
    }


def performance_profile(
    times: pd.DataFrame, column: str = "wu_to_target", taus: tuple[float, ...] = (1, 1.5, 2, 4, 8, 16, 32, 64)
) -> pd.DataFrame:
    """AlgoPerf's performance profile over networks: per strategy, the fraction of (table, network)
    whose median time to target is within tau x the fastest strategy's (a strategy that reached the
    target on fewer than half its seeds counts as never)."""
    rows = []
    for (table, arch), group in times.groupby(["table", "arch"]):
        per = group.groupby("strategy").apply(
            lambda g: g[column].median() if g["reached"].mean() >= 0.5 else math.inf, include_groups=False
        )
        best = per.min()
        for strategy, value in per.items():
            rows.append(
                {
                    "table": table,
                    "arch": arch,
                    "strategy": strategy,
                    "ratio": value / best if 0 < best < math.inf else math.inf,
                }
            )
    ratios = pd.DataFrame(rows, columns=["table", "arch", "strategy", "ratio"])
    return pd.DataFrame(
        [
            {"strategy": s, "tau": t, "fraction": float((g["ratio"] <= t).mean())}
            for s, g in ratios.groupby("strategy")
            for t in taus
        ],
        columns=["strategy", "tau", "fraction"],
    )
