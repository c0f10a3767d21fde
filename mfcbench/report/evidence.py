"""cells.csv: one row per trained cell, the evidence behind every pair in pairs.csv.

With claims.csv and pairs.csv it lets anyone recompute every interval from what is committed: the
headline metric per cell and seed, #WU planned (closed form) and executed, training seconds, the
convergence flag and statistic, the status, the training-code digest the cell was trained under
(manifest.training_code) and, for tables with a time-to-quality claim, the cell's target and time to
it (censored at the budget when it missed).
"""

from __future__ import annotations

import re

import pandas as pd

from .layout import normalise
from .time_to_target import time_to_target

CELL_COLUMNS = [
    "table",
    "arch",
    "strategy",
    "variant",
    "seed",
    "dataset",
    "metric",
    "value",
    "wu_planned",
    "wu_executed",
    "train_seconds",
    "converged",
    "plateau",
    "plateau_threshold",
    "status",
    "training_code",
    "target",
    "reached",
    "wu_to_target",
    "seconds_to_target",
]
_TABLE = re.compile(r"table\d+")


def _metric_names(claims: list[dict]) -> dict[str, str]:
    return {c["input"]: c["metric"] for c in claims if c.get("check") in ("similar_quality", "time_to_quality")}


def _headline(frame: pd.DataFrame, fallback: str | None) -> tuple[pd.Series, pd.Series]:
    """Per row: the metric's name (the cell's own headline_metric, else the claim's) and its value."""
    names = frame["headline_metric"] if "headline_metric" in frame else pd.Series(fallback, index=frame.index)
    names = names.where(names.notna() & names.astype(str).isin(frame.columns), fallback)
    values = [
        pd.to_numeric(pd.Series([row.get(n)]), errors="coerce").iloc[0] if isinstance(n, str) else float("nan")
        for n, (_, row) in zip(names, frame.iterrows())
    ]
    return names, pd.Series(values, index=frame.index, dtype=float)


def cells_frame(results: dict[str, pd.DataFrame], claims: list[dict]) -> pd.DataFrame:
    """cells.csv (CELL_COLUMNS) over every gathered training table in `results`."""
    metrics, parts = _metric_names(claims), []
    for name, frame in sorted(results.items()):
        if not _TABLE.fullmatch(name) or not {"arch", "strategy", "seed"} <= set(frame.columns):
            continue
        names, values = _headline(frame, metrics.get(name))
        part = pd.DataFrame(
            {
                "table": name,
                "arch": frame["arch"].map(normalise),
                "strategy": frame["strategy"].map(normalise),
                "variant": frame.get("variant", pd.Series("", index=frame.index)).astype(object).fillna(""),
                "seed": frame["seed"],
                "dataset": frame.get("dataset"),
                "metric": names,
                "value": values,
                "wu_planned": frame.get("wu_closed_form"),
                "wu_executed": frame.get("wu_executed"),
                "train_seconds": frame.get("train_seconds"),
                "converged": frame.get("converged"),
                "plateau": frame.get("plateau"),
                "plateau_threshold": frame.get("plateau_threshold"),
                "status": frame.get("status", pd.Series("ok", index=frame.index)),
                "training_code": frame.get("training_code"),  # digest of the training modules (manifest.py)
            }
        )
        parts.append(_with_times(part, name, results, claims))
    if not parts:
        return pd.DataFrame(columns=CELL_COLUMNS)
    return pd.concat(parts, ignore_index=True).reindex(columns=CELL_COLUMNS)


def _with_times(part: pd.DataFrame, name: str, results: dict[str, pd.DataFrame], claims: list[dict]) -> pd.DataFrame:
    """Time to target of each base cell, from the table's time-to-quality claim (its metric and margin)."""
    spec = next((c for c in claims if c.get("check") == "time_to_quality" and c.get("input") == name), None)
    curves = results.get(f"curves_{name}")
    if spec is None or curves is None or "val_metric" not in curves or spec["metric"] not in results[name]:
        return part
    times = time_to_target(results[name], curves, spec["metric"], spec["higher_is_better"], spec["tolerance"]["margin"])
    times = times.drop(columns=["table", "converged", "status", "wu_budget", "seconds_budget"]).assign(variant="")
    base = part["variant"].map(normalise).isin(["base", "nan", "none", ""])
    keyed = part.assign(_v=base.map({True: "", False: "other"}), _seed=pd.to_numeric(part["seed"], errors="coerce"))
    merged = keyed.merge(
        times.rename(columns={"variant": "_v", "seed": "_seed"}), how="left", on=["arch", "strategy", "_v", "_seed"]
    )
    return merged.drop(columns=["_v", "_seed"])
