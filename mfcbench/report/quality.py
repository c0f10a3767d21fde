"""Time-to-quality: when a cell first reaches SGD's final validation metric (within a claim's margin).

For each network and seed, the target is SGD's final headline metric loosened by the margin
(x (1 + margin) when lower is better, x (1 - margin) when higher is better). For every strategy's
curve of that network and seed, the first validation that meets the target gives the executed #WU
and the training seconds (optimizer steps only) spent to get there; "never" when no validation does.
Pure pandas over the gathered tables: `tableN.csv` (finals) and `curves_tableN.csv` (curves).
"""

from __future__ import annotations

import math

import pandas as pd

from .layout import normalise

TTQ_COLUMNS = ["table", "arch", "strategy", "seed", "target", "reached", "wu_to_quality", "train_seconds_to_quality",
               "wu_total", "train_seconds_total", "converged", "status"]


def _base(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.assign(_a=frame["arch"].map(normalise), _s=frame["strategy"].map(normalise))
    if "variant" in frame:
        frame = frame[frame["variant"].map(normalise).isin(["base", "nan", "none", ""])]
    return frame


def time_to_quality(cells: pd.DataFrame, curves: pd.DataFrame, metric: str, higher: bool, margin: float) -> pd.DataFrame:
    """One row per cell (see TTQ_COLUMNS); `metric` is the headline column of `cells`."""
    cells, curves = _base(cells), _base(curves)
    rows = []
    for (arch, seed), group in cells.groupby(["_a", "seed"], sort=True):
        sgd = group[(group["_s"] == "sgd") & (group.get("status", "ok").map(normalise).isin(["ok", "nan"]))]
        final = pd.to_numeric(sgd[metric], errors="coerce").dropna()
        if final.empty:
            continue
        target = float(final.iloc[0]) * ((1 - margin) if higher else (1 + margin))
        for _, cell in group.iterrows():
            curve = curves[(curves["_a"] == arch) & (curves["seed"] == seed) & (curves["_s"] == cell["_s"])]
            rows.append(_cell_ttq(cell, curve, target, higher))
    return pd.DataFrame(rows, columns=TTQ_COLUMNS)


def _cell_ttq(cell: pd.Series, curve: pd.DataFrame, target: float, higher: bool) -> dict:
    values = pd.to_numeric(curve.get("val_metric"), errors="coerce")
    met = curve[(values >= target) if higher else (values <= target)]
    first = met.sort_values("iteration").iloc[0] if not met.empty else None
    seconds_col = "train_seconds" if "train_seconds" in curve else None
    return {
        "table": cell.get("table"), "arch": cell["_a"], "strategy": cell["_s"], "seed": int(cell["seed"]),
        "target": target, "reached": first is not None,
        "wu_to_quality": float(first["wu_executed"]) if first is not None else math.nan,
        "train_seconds_to_quality": float(first[seconds_col]) if first is not None and seconds_col else math.nan,
        "wu_total": float(pd.to_numeric(pd.Series([cell.get("wu_executed")]), errors="coerce").iloc[0]),
        "train_seconds_total": float(pd.to_numeric(pd.Series([cell.get("train_seconds")]), errors="coerce").iloc[0]),
        "converged": cell.get("converged"), "status": cell.get("status", "ok"),
    }
