"""Statistics the claims use, from scipy/statsmodels (no hand-written quantiles)."""

from __future__ import annotations

import math

import pandas as pd


def mean_interval(values: pd.Series, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and the two-sided Student-t interval (NaN bounds with fewer than 2 values)."""
    from scipy import stats

    values = pd.to_numeric(values, errors="coerce").dropna()
    if values.empty:
        return float("nan"), float("nan"), float("nan")
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    return mean, mean - half, mean + half
