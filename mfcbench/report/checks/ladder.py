"""Beyond the paper: does the gap to SGD shrink toward the paper's scale? (issue 32 item 2)

A claim `ladder_trend` names a paper table's rungs along one axis (`rungs: {table: axis value}`, e.g.
{table4: 0.25, table4_w05: 0.5, table4_w1: 1.0}: the ladder profile's tables, workflow/config/ladder.yaml),
the axis value of the paper's setting (`paper`) and the headline metric. Per (network, multiscale strategy)
series, every seed of every rung gives the seed-paired log ratio d = log(multiscale / SGD) on that rung's
cells (`ladder_points`), and an OLS fit (statsmodels) of d on x = log2(axis value / base value) gives the
slope per doubling with its 95% interval, and the fitted ratio at the paper's setting with its interval
(an extrapolation when the setting lies beyond the rungs run).

"Shrinks" means d moves toward 0: the slope has the opposite sign of the fitted gap at the base rung (for
MSE a ratio above 1 falling, for SSIM one below 1 rising). One-sided p-values of "shrinks" and "grows",
Holm-corrected across the claim's series (`stats.holm`):
- REPRODUCED when every series shrinks (its adjusted p of "shrinks" below 0.025: its interval lies on the
  shrinking side after Holm);
- DEVIATES when some series grows (adjusted p of "grows" below 0.025);
- INCONCLUSIVE otherwise, each undecided series saying how many seeds a rung the power calculation asks
  for (`stats.seeds_needed` on the slope's t statistic: with n seeds a rung the slope's standard error is
  sigma / sqrt(n Sxx), Sxx over the rungs' x, a one-sample t-test of effect slope sqrt(Sxx) / sigma at the
  strictest Holm level).
A series with fewer than `min_seeds` paired seeds on a rung, or fewer than two rungs, is undecided. A rung
where a side did not converge (or a cell diverged or failed) is named in the reason, never dropped: its
finished seeds stay in the fitted slope shown, and the series is undecided (INCONCLUSIVE, no seed count:
more seeds would not make it converge), the rule a pair follows (report/pairs.py). Fewer than two rungs run:
NOT_RUN naming the missing ones.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ...core.optional import require
from .. import stats
from ..engine import DEVIATES, INCONCLUSIVE, NOT_RUN, REPRODUCED, Inputs, base_variant, check, datasets, frame, truthy
from ..layout import normalise

STRATEGIES = ("msgd", "fmsgd")
POINT_COLUMNS = ["table", "value", "arch", "strategy", "seed", "log_ratio", "ratio", "converged", "note"]


def _rungs(spec: dict) -> dict[str, float]:
    return {str(table): float(value) for table, value in spec["rungs"].items()}


def _base_table(spec: dict) -> list[str]:
    return [next(iter(spec["rungs"]))]


def _cells(rows: pd.DataFrame, arch: str, strategy: str) -> pd.DataFrame:
    picked = rows[(rows["arch"].map(normalise) == arch) & (rows["strategy"].map(normalise) == strategy)]
    return picked.drop_duplicates("seed", keep="last").set_index("seed")


def rung_points(table: pd.DataFrame, name: str, value: float, metric: str) -> pd.DataFrame:
    """One rung's seed-paired log ratios (multiscale / SGD), one row per (arch, strategy, seed) both sides
    ran; a seed where a side did not finish ok has no ratio and says why (`note`)."""
    rows = base_variant(table)
    out = []
    for arch in sorted(set(rows["arch"].map(normalise))):
        sgd = _cells(rows, arch, "sgd")
        for strategy in STRATEGIES:
            ours = _cells(rows, arch, strategy)
            for seed in sorted(set(ours.index) & set(sgd.index)):
                sides = {strategy: ours.loc[seed], "sgd": sgd.loc[seed]}
                status = {s: normalise(r.get("status", "ok")) for s, r in sides.items()}
                bad = [f"{s} {v}" for s, v in status.items() if v not in ("ok", "nan")]
                x, y = (pd.to_numeric(sides[s].get(metric), errors="coerce") for s in (strategy, "sgd"))
                ok = not bad and x > 0 and y > 0
                converged = all(truthy(r.get("converged")) for r in sides.values())
                off = [s for s, r in sides.items() if not truthy(r.get("converged"))]
                note = "; ".join(bad) or ("" if converged else "not converged: " + ", ".join(off))
                out.append({"table": name, "value": value, "arch": arch, "strategy": strategy, "seed": seed,
                            "log_ratio": math.log(x / y) if ok else float("nan"),
                            "ratio": x / y if ok else float("nan"), "converged": converged, "note": note})
    return pd.DataFrame(out, columns=POINT_COLUMNS)


def ladder_points(spec: dict, results: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, list[str]]:
    """Every rung's per-seed ratios (`rung_points`) of a claim, and the rungs it names that did not run."""
    frames, missing = [], []
    for name, value in _rungs(spec).items():
        table = frame(results, name)
        if table is None:
            missing.append(name)
        else:
            frames.append(rung_points(table, name, value, spec["metric"]))
    points = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=POINT_COLUMNS)
    return points, missing


def fit_series(points: pd.DataFrame, base: float, paper: float) -> dict[str, Any]:
    """OLS of one series' log ratios on log2(value / base): slope, its interval, one-sided p-values of
    "shrinks" and "grows", the fitted ratio at the base and at the paper's setting with its interval."""
    require("statsmodels.api", "harness")
    import statsmodels.api as sm
    from scipy.stats import t as student

    used = points.dropna(subset=["log_ratio"])
    x = np.log2(used["value"].to_numpy(float) / base)
    levels = np.unique(x)
    fit: dict[str, Any] = {"n": len(used), "rungs": len(levels)}
    if len(levels) < 2 or len(used) < 3:
        return fit
    result = sm.OLS(used["log_ratio"].to_numpy(float), sm.add_constant(x)).fit()
    intercept, slope = (float(v) for v in result.params)
    low, high = (float(v) for v in result.conf_int(0.05)[1])
    gap = 1.0 if intercept >= 0 else -1.0  # the side of 0 the base rung's fitted gap lies on
    t_value, df = float(result.tvalues[1]) * gap, float(result.df_resid)
    at_paper = result.get_prediction(np.array([[1.0, math.log2(paper / base)]]))
    p_low, p_high = (float(v) for v in np.asarray(at_paper.conf_int(alpha=0.05))[0])
    sigma = float(math.sqrt(result.scale)) if result.df_resid > 0 else float("nan")
    fit.update(slope=slope, low=low, high=high, base_ratio=math.exp(intercept), gap=gap,
               p_shrink=float(student.cdf(t_value, df)) if df > 0 else float("nan"),
               p_grow=float(student.sf(t_value, df)) if df > 0 else float("nan"),
               paper_ratio=math.exp(float(np.asarray(at_paper.predicted_mean)[0])),
               paper_low=math.exp(p_low), paper_high=math.exp(p_high),
               extrapolated=paper > max(used["value"]) or paper < min(used["value"]),
               sigma=sigma, sxx=float(((levels - levels.mean()) ** 2).sum()))
    return fit


def _series(points: pd.DataFrame) -> list[tuple[str, str]]:
    return sorted(set(zip(points["arch"], points["strategy"])), key=lambda s: (s[0], STRATEGIES.index(s[1])))


def _flags(points: pd.DataFrame, min_seeds: int) -> tuple[list[str], list[str]]:
    """(rungs a side did not converge or finish on, named with the seeds; rungs with too few paired seeds)."""
    named, thin = [], []
    for table, rung in points.groupby("table", sort=False):
        off = rung[rung["note"].astype(bool)]
        if len(off):
            named.append(f"{table} seed(s) {', '.join(str(s) for s in off['seed'])} ({'; '.join(sorted(set(off['note'])))})")
        if rung["log_ratio"].notna().sum() < min_seeds:
            thin.append(f"{table} ({int(rung['log_ratio'].notna().sum())} seeds)")
    return named, thin


def _describe(label: str, fit: dict, spec: dict) -> str:
    if "slope" not in fit:
        return f"{label}: {fit['n']} ratio(s) on {fit['rungs']} rung(s), too few to fit a slope"
    axis, paper = spec["axis"], spec["paper"]
    where = "extrapolated to" if fit["extrapolated"] else "fitted at"
    return (f"{label}: slope {fit['slope']:+.3f} log ratio per doubling of {axis} [95% CI {fit['low']:+.3f}, "
            f"{fit['high']:+.3f}]; {fit['base_ratio']:.3g}x SGD at the base rung, {fit['paper_ratio']:.3g}x "
            f"[{fit['paper_low']:.3g}, {fit['paper_high']:.3g}] {where} the paper's {axis} {paper:g}"
            + (" (an extrapolation)" if fit["extrapolated"] else ""))


def _undecided_seeds(fit: dict, family: int) -> int | None:
    if "slope" not in fit or not fit["sigma"] == fit["sigma"]:
        return None
    return stats.seeds_needed(abs(fit["slope"]) * math.sqrt(fit["sxx"]), fit["sigma"], 0.0, alpha=stats.ALPHA / family)


def decide_series(fits: dict[tuple[str, str], dict], thin: dict[tuple[str, str], list[str]],
                  blocked: dict[tuple[str, str], list[str]] | None = None) -> dict:
    """Each series' verdict by the rule of the module docstring (Holm across the series); `blocked`: the
    rungs on which a side of the series did not converge or finish."""
    keys = list(fits)
    blocked = blocked or {}
    decidable = [k for k in keys if "slope" in fits[k] and not thin[k] and not blocked.get(k)]
    shrink = dict(zip(decidable, stats.holm([fits[k]["p_shrink"] for k in decidable])))
    grow = dict(zip(decidable, stats.holm([fits[k]["p_grow"] for k in decidable])))
    out = {}
    for key in keys:
        fit = fits[key]
        if key in shrink and shrink[key] < stats.ALPHA:
            out[key] = (REPRODUCED, "shrinks", None)
        elif key in grow and grow[key] < stats.ALPHA:
            out[key] = (DEVIATES, "grows", None)
        elif blocked.get(key):
            out[key] = (INCONCLUSIVE, "a side not converged or not finished on " + ", ".join(blocked[key]), None)
        else:
            why = ("too few seeds on " + ", ".join(thin[key])) if thin[key] else "slope interval straddles 0"
            out[key] = (INCONCLUSIVE, why, _undecided_seeds(fit, len(keys)))
        fit["p_holm"] = grow.get(key, float("nan")) if out[key][0] == DEVIATES else shrink.get(key, float("nan"))
    return out


def _pair_row(spec: dict, key: tuple[str, str], fit: dict, decided: tuple, series: pd.DataFrame) -> dict:
    base = next(iter(spec["rungs"]))
    converged = series.groupby("table", sort=False)["converged"].agg(lambda c: f"{int(c.sum())}/{len(c)}")
    return {"table": base, "arch": key[0], "strategy": key[1], "versus": f"{base}:sgd, rung by rung",
            "metric": spec["metric"], "unit": f"ratio per doubling of {spec['axis']}", "n": fit["n"],
            "seeds": " ".join(f"{t}:{c}" for t, c in converged.items()),
            "ratio": math.exp(fit["slope"]) if "slope" in fit else float("nan"),
            "low": math.exp(fit["low"]) if "slope" in fit else float("nan"),
            "high": math.exp(fit["high"]) if "slope" in fit else float("nan"),
            "p_worse": fit.get("p_grow", float("nan")), "p_holm": fit.get("p_holm", float("nan")),
            "seeds_needed": decided[2], "converged_ours": " ".join(f"{t}:{c}" for t, c in converged.items()),
            "verdict": decided[0], "reason": f"{decided[1]}: {_describe(f'{key[0]}/{key[1]}', fit, spec)}"}


@check("ladder_trend", inputs=_base_table)
def check_ladder_trend(data: Inputs):
    """The gap to SGD shrinks toward the paper's setting along one axis (module docstring)."""
    spec, min_seeds = data.spec, int(data.tolerance.get("min_seeds", 3))
    points, missing = ladder_points(spec, data.results)
    run = [t for t in _rungs(spec) if t not in missing]
    if len(run) < 2:
        return data.verdict(NOT_RUN, f"needs two rungs or more; run: {', '.join(run)}; not run: {', '.join(missing)}")
    base = _rungs(spec)[run[0]]
    fits, thin, named, blocked = {}, {}, {}, {}
    for key in _series(points):
        series = points[(points["arch"] == key[0]) & (points["strategy"] == key[1])]
        fits[key] = fit_series(series, base, float(spec["paper"]))
        named[key], thin[key] = _flags(series, min_seeds)
        blocked[key] = [str(t) for t, rung in series.groupby("table", sort=False) if rung["note"].astype(bool).any()]
    decided = decide_series(fits, thin, blocked)
    verdict = (DEVIATES if any(d[0] == DEVIATES for d in decided.values()) else
               REPRODUCED if decided and all(d[0] == REPRODUCED for d in decided.values()) else INCONCLUSIVE)
    parts = [f"{k[0]}/{k[1]} {d[1]}" + (f" (needs {d[2]} seeds a rung)" if d[2] else "") for k, d in decided.items()]
    details = [_describe(f"{k[0]}/{k[1]}", fits[k], spec) for k in fits]
    notes = sorted({n for k in named for n in named[k]})
    reason = "; ".join(parts) + " (Holm across the series). " + ". ".join(details)
    reason += (". Not converged or not finished, kept in the fitted slope: " + "; ".join(notes)) if notes else ""
    reason += (f". Rungs not run: {', '.join(missing)}") if missing else ""
    pairs = tuple(_pair_row(spec, k, fits[k], decided[k], points[(points["arch"] == k[0]) & (points["strategy"] == k[1])])
                  for k in fits)
    shown = "; ".join(f"{k[0]}/{k[1]} {fits[k]['paper_ratio']:.3g}x at the paper's {spec['axis']}"
                      for k in fits if "slope" in fits[k])
    return data.verdict(verdict, reason, reproduced=shown, dataset=datasets(data.frame), pairs=pairs)
