"""Statistics the claims use, from scipy and statsmodels (no hand-written quantiles).

A comparison of a multiscale strategy with SGD is a *pair*: one network, one strategy, the seeds both
ran. Its evidence is the seed-paired log ratio d_s = log(x_ours,s / x_sgd,s), signed so that d > 0 means
worse than SGD (`worse`). A claim "similar to SGD" is a one-sided non-inferiority test against a margin
fixed in claims.yaml: the bound is log(1 + margin) (lower is better) or -log(1 - margin) (higher is
better) on that scale.

- `paired_interval`: mean of d with its two-sided Student-t interval (scipy), and the ratio and interval
  exponentiated back (the geometric-mean ratio of ours to SGD's);
- `p_worse` / `p_inside`: one-sided one-sample t-tests of "worse than the margin" / "inside it";
- `holm`: Holm's step-down correction across a claim's pairs (statsmodels' multipletests);
- `seeds_needed`: the seed count a t-test power calculation (statsmodels' TTestPower) says would
  decide an undecided pair, from its observed mean distance to the margin over its spread (a direct
  search with its power function where the solver finds no root); which pairs ask, and how many seeds
  a plan then adds, is `seedcount`'s rule;
- `beat_probability`: the fraction of seeds on which ours beats SGD, with a Wilson interval.

ALPHA is one-sided 0.025, the tail of the two-sided 95% interval: a pair whose interval lies wholly
outside the margin has p_worse < ALPHA before any correction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.optional import require

ALPHA = 0.025
LEVEL = 0.95
POWER = 0.8
MAX_SEEDS = 10_000  # a power calculation asking for more says "needs more than 10000 seeds"


def mean_interval(values: pd.Series, level: float = LEVEL) -> tuple[float, float, float]:
    """Mean and the two-sided Student-t interval (NaN bounds with fewer than 2 values; a point when
    every value is equal)."""
    require("scipy.stats", "harness")  # a missing package names its extra
    from scipy import stats

    values = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    if values.empty:
        return float("nan"), float("nan"), float("nan")
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    sem = float(values.std(ddof=1)) / math.sqrt(len(values))
    if sem == 0:
        return mean, mean, mean
    low, high = stats.t.interval(level, len(values) - 1, loc=mean, scale=sem)
    return mean, float(low), float(high)


def log_ratios(ours: pd.Series, reference: pd.Series) -> pd.Series:
    """log(ours / reference) on the seeds (index) both have, positive and finite values only."""
    ours, reference = pd.to_numeric(ours, errors="coerce"), pd.to_numeric(reference, errors="coerce")
    seeds = ours.index.intersection(reference.index)
    ratio = (ours.loc[seeds] / reference.loc[seeds]).astype(float)
    ratio = ratio[(ratio > 0) & np.isfinite(ratio)]
    return np.log(ratio).sort_index()


def worse(log_ratio: pd.Series, higher_is_better: bool) -> pd.Series:
    """Signed so that > 0 is worse than SGD."""
    return -log_ratio if higher_is_better else log_ratio


def margin_bound(margin: float, higher_is_better: bool) -> float:
    """The margin on the `worse` scale: log(1 + m) above SGD, or -log(1 - m) below it."""
    return -math.log(1 - margin) if higher_is_better else math.log1p(margin)


@dataclass(frozen=True)
class PairInterval:
    n: int
    mean: float  # of the worse-signed log ratio
    sd: float
    low: float  # interval of the worse-signed log ratio
    high: float
    ratio: float  # exp(mean log ratio): ours / SGD
    ratio_low: float
    ratio_high: float


def paired_interval(worse_log: pd.Series, higher_is_better: bool, level: float = LEVEL) -> PairInterval:
    """The interval of a pair on the worse-signed log scale, and the same back on the ratio scale."""
    values = pd.to_numeric(worse_log, errors="coerce").dropna()
    mean, low, high = mean_interval(values, level)
    sd = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
    sign = -1.0 if higher_is_better else 1.0  # back from 'worse' to log(ours/SGD)
    bounds = sorted([sign * low, sign * high]) if low == low else [float("nan")] * 2
    return PairInterval(
        len(values),
        mean,
        sd,
        low,
        high,
        math.exp(sign * mean) if mean == mean else float("nan"),
        math.exp(bounds[0]),
        math.exp(bounds[1]),
    )


def _one_sided(values: pd.Series, bound: float, alternative: str) -> float:
    """p of the one-sample t-test of mean(values) against `bound` ('greater': H1 mean > bound)."""
    require("scipy.stats", "harness")  # a missing package names its extra
    from scipy import stats

    values = pd.to_numeric(values, errors="coerce").dropna()
    if len(values) < 2:
        return float("nan")
    if float(values.std(ddof=1)) == 0:  # no spread: the sign of the difference decides
        above = float(values.mean()) > bound
        return 0.0 if above == (alternative == "greater") and float(values.mean()) != bound else 1.0
    return float(stats.ttest_1samp(values, bound, alternative=alternative).pvalue)


def p_worse(worse_log: pd.Series, bound: float) -> float:
    """One-sided p that the pair is worse than the margin (H1: mean > bound)."""
    return _one_sided(worse_log, bound, "greater")


def p_inside(worse_log: pd.Series, bound: float) -> float:
    """One-sided p that the pair is inside the margin (H1: mean < bound): non-inferiority."""
    return _one_sided(worse_log, bound, "less")


def holm(pvalues: list[float]) -> list[float]:
    """Holm-adjusted p-values (NaN stays NaN and is not counted in the family)."""
    require("statsmodels.stats.multitest", "harness")  # a missing package names its extra
    from statsmodels.stats.multitest import multipletests

    pvalues = [float(p) for p in pvalues]
    present = [i for i, p in enumerate(pvalues) if p == p]
    out = [float("nan")] * len(pvalues)
    if present:
        adjusted = multipletests([pvalues[i] for i in present], alpha=ALPHA, method="holm")[1]
        for i, p in zip(present, adjusted):
            out[i] = float(p)
    return out


def seeds_needed(mean: float, sd: float, bound: float, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """Seeds at which a one-sided t-test at `alpha` would, with probability `power`, put a pair with
    this mean and spread on its side of `bound` (statsmodels' TTestPower), at least 2; MAX_SEEDS + 1
    when more than MAX_SEEDS would be needed. None when it cannot be said (no spread measured, or the
    mean sits on the bound). Where statsmodels' solver finds no root (a large effect that 2 or 3 seeds
    decide), the count is searched directly with its power function (`_search_seeds`)."""
    import warnings

    require("statsmodels.stats.power", "harness")  # a missing package names its extra
    from statsmodels.stats.power import TTestPower
    from statsmodels.tools.sm_exceptions import ConvergenceWarning  # imported first: it sets its own filter

    if not (sd == sd and mean == mean) or sd <= 0 or mean == bound:
        return None
    effect = abs(mean - bound) / sd
    try:
        with warnings.catch_warnings():  # a failed solve returns NaN with a warning: searched below
            warnings.simplefilter("ignore", ConvergenceWarning)
            nobs = TTestPower().solve_power(effect_size=effect, alpha=alpha, power=power, alternative="larger")
        nobs = float(np.asarray(nobs).item())
    except (ValueError, RuntimeError):
        nobs = float("nan")
    if not math.isfinite(nobs):
        return _search_seeds(effect, alpha, power)
    if nobs > MAX_SEEDS:
        return MAX_SEEDS + 1
    return max(2, math.ceil(nobs))


def _search_seeds(effect: float, alpha: float, power: float) -> int | None:
    """The fewest seeds n in [2, MAX_SEEDS] whose one-sided t-test power (statsmodels' TTestPower.power,
    increasing in n) reaches `power`, by bisection; MAX_SEEDS + 1 when even MAX_SEEDS falls short,
    None when the power cannot be computed."""
    require("statsmodels.stats.power", "harness")  # a missing package names its extra
    from statsmodels.stats.power import TTestPower

    def enough(n: int) -> bool | None:
        value = float(np.asarray(TTestPower().power(effect_size=effect, nobs=n, alpha=alpha, alternative="larger")).item())
        return value >= power if math.isfinite(value) else None

    low, high = 2, MAX_SEEDS
    top = enough(high)
    if top is None:
        return None
    if not top:
        return MAX_SEEDS + 1
    while low < high:  # invariant: enough(high); every n below low falls short
        middle = (low + high) // 2
        verdict = enough(middle)
        if verdict is None:
            return None
        low, high = (low, middle) if verdict else (middle + 1, high)
    return high


def beat_probability(worse_log: pd.Series, level: float = LEVEL) -> tuple[int, int, float, float, float]:
    """(wins, n, fraction, low, high): seeds on which ours beats SGD (worse-signed log ratio < 0), with
    the Wilson interval of that probability (statsmodels' proportion_confint)."""
    require("statsmodels.stats.proportion", "harness")  # a missing package names its extra
    from statsmodels.stats.proportion import proportion_confint

    values = pd.to_numeric(worse_log, errors="coerce").dropna()
    n, wins = len(values), int((values < 0).sum())
    if n == 0:
        return 0, 0, float("nan"), float("nan"), float("nan")
    low, high = proportion_confint(wins, n, alpha=1 - level, method="wilson")
    low, high = (0.0 if wins == 0 else float(low)), (1.0 if wins == n else float(high))  # exact at the ends
    return wins, n, wins / n, low, high
