"""Checks on trained cells against SGD (Tables 3-8): similar quality, time to quality, absolute values."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..engine import (
    DEVIATES,
    INCONCLUSIVE,
    NOT_RUN,
    REPRODUCED,
    Inputs,
    check,
    combine,
    datasets,
    first_metric,
    ok_rows,
    published_by_keys,
    strategy_means,
    substitution_note,
    truthy,
    where,
)
from ..layout import normalise
from ..stats import mean_interval


def _similar_published(spec: dict) -> str:
    if spec.get("published"):
        return spec["published"]
    pub = pd.DataFrame([{**c["keys"], spec["metric"]: c["value"]} for c in published_by_keys(spec["input"]) if "arch" in c["keys"]])
    return f"worst gap {_worst_gap(pub, spec['metric'], spec['higher_is_better'])[0]:+.1%}"


@check("similar_quality", published=_similar_published)
def check_similar_quality(data: Inputs):
    """Per network and multiscale strategy: the seed-paired ratio multiscale/SGD of the metric, its
    mean and 95% Student-t interval; REPRODUCED when every interval lies inside the margin (and the
    multiscale cells are cheaper) against converged SGD cells, DEVIATES when one lies wholly outside
    with converged cells on both sides, INCONCLUSIVE when an SGD reference is not converged, fewer
    than `min_seeds` seeds ran, a worse multiscale cell had not converged (more budget might close the
    gap), or an interval straddles the margin. A diverged multiscale cell beside a finished SGD cell
    deviates."""
    spec, table, tol = data.spec, data.frame, data.tolerance
    metric, higher = spec["metric"], spec["higher_is_better"]
    if metric not in table.columns:
        return data.verdict(NOT_RUN, f"results lack {metric}")
    pairs = [quality_pair(table, arch, strategy, metric, higher, tol["margin"], tol.get("min_seeds", 3))
             for arch, strategy in multiscale_pairs(table)]
    if not pairs:
        return data.verdict(NOT_RUN, "no network has both SGD and a multiscale strategy")
    wu_col = first_metric(table, ["wu_executed", "wu_closed_form"])
    wu = strategy_means(table, wu_col) if wu_col else pd.Series(dtype=float)
    fractions = {s: wu[s] / wu["sgd"] for s in ("msgd", "fmsgd") if s in wu and "sgd" in wu}
    verdict = combine(p["verdict"] for p in pairs)
    if verdict == REPRODUCED and not (fractions and all(f < 1 for f in fractions.values())):
        verdict = DEVIATES
    worst = max(pairs, key=lambda p: (p["verdict"] == verdict, p["excess"] if p["excess"] == p["excess"] else -1))
    frac = ", ".join(f"{s} {f:.3g}" for s, f in fractions.items()) or "no #WU"
    deciding = [p for p in pairs if p["verdict"] == verdict]
    tally = pd.Series([p["verdict"] for p in pairs]).value_counts()
    reason = (f"{verdict.lower()} ({len(pairs)} pairs: " + ", ".join(f"{n} {v}" for v, n in tally.items()) + "): "
              + "; ".join(p["reason"] for p in deciding[:3]) + (" ..." if len(deciding) > 3 else "")
              + f" (margin {tol['margin']:.0%} {'below' if higher else 'above'} SGD; #WU fraction of SGD: {frac})"
              + substitution_note(table, spec["input"]))
    return data.verdict(verdict, reason, reproduced=worst["display"], dataset=datasets(table))


def multiscale_pairs(table: pd.DataFrame) -> list[tuple[str, str]]:
    arch, strategy = table["arch"].map(normalise), table["strategy"].map(normalise)
    have = set(zip(arch, strategy))
    return sorted({(a, s) for a, s in have if s != "sgd" and (a, "sgd") in have})


def quality_pair(table: pd.DataFrame, arch: str, strategy: str, metric: str, higher: bool, margin: float,
                 min_seeds: int) -> dict[str, Any]:
    """The verdict of one (network, multiscale strategy) against SGD on the same seeds."""
    rows = table[table["arch"].map(normalise) == arch]
    if "variant" in rows:  # the claim is about the plain strategies; variants (e.g. +crops) are other rows
        rows = rows[rows["variant"].map(normalise).isin(["base", "nan", "none", ""])]
    cells = {s: rows[rows["strategy"].map(normalise) == s].set_index("seed") for s in (strategy, "sgd")}
    label = f"{arch}/{strategy}"
    status = {s: c["status"].map(normalise) if "status" in c else pd.Series("ok", index=c.index) for s, c in cells.items()}
    failed = [f"{s} seed {k}" for s, st in status.items() for k, v in st.items() if v not in ("ok", "nan", "diverged")]
    if failed:
        return _pair(NOT_RUN, label, f"failed to run ({', '.join(failed)}; see the cell's metrics.json error)")
    if (status["sgd"] == "diverged").any():
        return _pair(INCONCLUSIVE, label, "its SGD reference diverged")
    if (status[strategy] == "diverged").any():
        return _pair(DEVIATES, label, f"diverged on seed(s) {sorted(status[strategy][status[strategy] == 'diverged'].index)}")
    seeds = sorted(set(cells["sgd"].index) & set(cells[strategy].index))
    ratio = (pd.to_numeric(cells[strategy].loc[seeds, metric], errors="coerce")
             / pd.to_numeric(cells["sgd"].loc[seeds, metric], errors="coerce")).dropna()
    excess = (1 - ratio) if higher else (ratio - 1)  # > 0: worse than SGD
    mean, low, high = mean_interval(excess)
    display = f"{label} {1 + (-mean if higher else mean):.3g}x SGD" + (
        f" [95% CI {1 + (-high if higher else low):.3g}, {1 + (-low if higher else high):.3g}]" if low == low else ""
    ) + f" (n={len(excess)})"
    unconverged = [f"{s} seed {k}" for s, c in cells.items() if "converged" in c
                   for k, v in c.loc[seeds, "converged"].items() if not truthy(v)]
    if "converged" not in rows:
        unconverged = ["convergence not recorded"]
    reference = [u for u in unconverged if u.startswith(("sgd", "convergence"))]  # SGD's quality not known yet
    if len(excess) == 0:
        return _pair(NOT_RUN, label, "no seed with both cells finished", display)
    enough = len(excess) >= min_seeds
    if high <= margin and enough and not reference:  # it got there: its own convergence does not matter
        return _pair(REPRODUCED, label, f"{display} within the margin", display, mean)
    if low > margin and enough and not unconverged:  # worse, and more steps would not have helped
        return _pair(DEVIATES, label, f"{display} outside the margin (converged cells)", display, mean)
    why = (f"SGD not converged ({', '.join(reference[:3])})" if reference
           else f"only {len(excess)} seed(s) (needs {min_seeds})" if not enough
           else f"outside the margin but not converged ({', '.join(unconverged[:3])})" if low > margin
           else "the interval straddles the margin")
    return _pair(INCONCLUSIVE, label, f"{display}: {why}", display, mean)


def _pair(verdict: str, label: str, reason: str, display: str = "", excess: float = float("nan")) -> dict:
    return {"verdict": verdict, "reason": f"{label} {reason}" if not reason.startswith(label) else reason,
            "display": display or label, "excess": excess}


def _worst_gap(table: pd.DataFrame, metric: str, higher: bool) -> tuple[float, str, int]:
    table = table.assign(_a=table["arch"].map(normalise), _s=table["strategy"].map(normalise))
    means = pd.to_numeric(table[metric], errors="coerce").groupby([table["_a"], table["_s"]]).mean().dropna()
    worst, at, archs = -math.inf, "", set()
    for (arch, strategy), value in means.items():
        if strategy == "sgd" or (arch, "sgd") not in means.index:
            continue
        base = means[(arch, "sgd")]
        gap = (base - value) / base if higher else (value - base) / base
        archs.add(arch)
        if gap > worst:
            worst, at = gap, f"{arch}/{strategy}"
    return (worst if archs else float("nan")), at, len(archs)


@check("time_to_quality", inputs=lambda spec: [spec["input"], f"curves_{spec['input']}"],
       published=lambda spec: "fewer #WU than SGD (Figure 5)")
def check_time_to_quality(data: Inputs):
    """Full-Multiscale reaches SGD's final metric (within the margin) at fewer executed #WU than SGD
    itself needs to get there: per network, on every seed; INCONCLUSIVE with unconverged cells or
    fewer than min_seeds seeds; DEVIATES when, with converged cells, it never gets there or needs more."""
    from ..quality import time_to_quality

    spec, tol, strategy = data.spec, data.tolerance, data.spec.get("strategy", "fmsgd")
    cells, curves = data.frame, data.frames[f"curves_{spec['input']}"]
    if "val_metric" not in curves or spec["metric"] not in cells:
        return data.verdict(NOT_RUN, f"needs {spec['input']}.csv and curves_{spec['input']}.csv with validation curves")
    ttq = time_to_quality(cells, curves, spec["metric"], spec["higher_is_better"], tol["margin"])
    outcomes = [_ttq_network(arch, group, strategy, tol.get("min_seeds", 3)) for arch, group in ttq.groupby("arch")]
    outcomes = [o for o in outcomes if o is not None]
    if not outcomes:
        return data.verdict(NOT_RUN, f"no network has both SGD and {strategy}")
    verdict = combine(o[0] for o in outcomes)
    reasons = [o[1] for o in outcomes if o[0] == verdict]
    others = [f"{o[1]} ({o[0]})" for o in outcomes if o[0] != verdict]
    reason = "; ".join(reasons[:4]) + (" ..." if len(reasons) > 4 else "") + f" (margin {tol['margin']:.0%})"
    return data.verdict(verdict, reason + (f"; the other networks: {'; '.join(others[:3])}" if others else ""),
                        reproduced="; ".join(o[2] for o in outcomes[:4]), dataset=datasets(cells))


def _ttq_network(arch: str, group: pd.DataFrame, strategy: str, min_seeds: int) -> tuple[str, str, str] | None:
    by = {s: g.set_index("seed") for s, g in group.groupby("strategy")}
    if "sgd" not in by or strategy not in by:
        return None
    seeds = sorted(set(by["sgd"].index) & set(by[strategy].index))
    ours, sgd = by[strategy].loc[seeds], by["sgd"].loc[seeds]
    ratio = ours["wu_to_quality"] / sgd["wu_to_quality"]
    shown = (f"{arch}: {strategy} reached on {int(ours['reached'].sum())}/{len(seeds)} seeds"
             + (f", at {ratio.mean():.2g}x SGD's #WU" if ratio.notna().any() else ""))
    reference = [f"sgd seed {k}" for k, v in sgd["converged"].items() if not truthy(v)]
    mine = [f"{strategy} seed {k}" for k, v in ours["converged"].items() if not truthy(v)]
    if reference:  # SGD's final value, the target, is not settled yet
        return INCONCLUSIVE, f"{shown}; SGD not converged ({', '.join(reference[:3])})", shown
    if len(seeds) < min_seeds:
        return INCONCLUSIVE, f"{shown}; only {len(seeds)} seed(s) (needs {min_seeds})", shown
    if ours["reached"].all() and (ratio < 1).all():
        return REPRODUCED, shown, shown
    if (~ours["reached"] | (ratio >= 1)).all():
        if mine:  # it never got there, but it was still improving: our budget, not the claim
            return INCONCLUSIVE, f"{shown}; {strategy} not converged ({', '.join(mine[:3])})", shown
        return DEVIATES, f"{shown}; SGD and {strategy} converged on every seed", shown
    return INCONCLUSIVE, f"{shown}; the seeds disagree", shown


def _absolute_cell(spec: dict) -> dict:
    return next(c for c in published_by_keys(spec["table"])
                if all(normalise(c["keys"].get(k)) == normalise(v) for k, v in spec["cell"].items()))


@check("absolute", published=lambda spec: _absolute_cell(spec)["printed"])
def check_absolute(data: Inputs):
    """One cell's absolute value, on the paper's dataset only (another dataset standing in: NOT_RUN)."""
    spec, cell = data.spec, _absolute_cell(data.spec)
    rows = where(ok_rows(data.frame), spec["cell"])
    used = datasets(rows if not rows.empty else data.frame)
    needed = spec["requires_dataset"]
    if normalise(used) != normalise(needed):
        return data.verdict(NOT_RUN, f"needs {needed} (network download); this profile ran on {used or 'nothing'}", dataset=used)
    values = pd.to_numeric(rows[spec["metric"]], errors="coerce").dropna()
    if values.empty:
        return data.verdict(NOT_RUN, "no finished run for this cell", dataset=used)
    mean, tol = float(values.mean()), data.tolerance
    limit = tol["abs"] if "abs" in tol else tol["rel"] * cell["value"]
    holds = abs(mean - cell["value"]) <= limit
    return data.verdict(REPRODUCED if holds else DEVIATES, f"|{mean:.4g} - {cell['value']:g}| {'<=' if holds else '>'} {limit:.3g}",
                        reproduced=f"{mean:.4g} (n={len(values)})", dataset=used)
